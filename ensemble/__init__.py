"""Ensemble voting over cached member probabilities [members, rows, classes].

Members are identified by name; every result is independent of member order. Import from the
modules (ensemble.voting, ensemble.recipe, ensemble.rules, ...): the package itself imports nothing,
so a script's --help that reads the rule table does not pay for scipy, scikit-learn and pandas.
"""
