"""Train one ensemble member: config → data → model → trainer → run folder → registry entry."""
