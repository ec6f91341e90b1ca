"""Label audits: likely label errors in the training pool, found from out-of-fold probabilities (cleanlab)."""
