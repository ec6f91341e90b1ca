"""Ensemble voting over cached member probabilities [members, rows, classes].

Members are identified by name; every result is independent of member order.
"""
from ensemble.calibration import apply_temperature, fit_temperature, fit_temperatures
from ensemble.compare import best_recipe, compare_rules
from ensemble.composite import CompositeSpec
from ensemble.diversity import disagreement, error_correlation, member_accuracy, oracle_rate
from ensemble.honest import (
    best_member_method,
    choose_best_member,
    crossfit_predictions,
    make_folds,
    paired_bootstrap_gain,
    paired_bootstrap_gains,
)
from ensemble.metrics import macro_f1
from ensemble.recipe import Recipe
from ensemble.recipe import apply as apply_recipe
from ensemble.selection import caruana_selection, fit_simplex_weights
from ensemble.voting import (
    geometric_vote,
    hard_vote,
    hard_vote_with_shares,
    logit_vote,
    soft_vote,
    vote_counts,
    vote_shares,
)

__all__ = [
    "CompositeSpec",
    "Recipe",
    "apply_recipe",
    "apply_temperature",
    "best_member_method",
    "best_recipe",
    "caruana_selection",
    "choose_best_member",
    "compare_rules",
    "crossfit_predictions",
    "disagreement",
    "error_correlation",
    "fit_simplex_weights",
    "fit_temperature",
    "fit_temperatures",
    "geometric_vote",
    "hard_vote",
    "hard_vote_with_shares",
    "logit_vote",
    "macro_f1",
    "make_folds",
    "member_accuracy",
    "oracle_rate",
    "paired_bootstrap_gain",
    "paired_bootstrap_gains",
    "soft_vote",
    "vote_counts",
    "vote_shares",
]
