"""Load members from the registry, decode each image once, run every member, cache probabilities."""
