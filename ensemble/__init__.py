"""Ensemble voting over cached member probabilities [members, rows, classes].

Members are identified by name; every result is independent of member order.
"""
from ensemble.calibration import apply_temperature, fit_temperature, fit_temperatures
from ensemble.compare import Comparison, compare, pick_best
from ensemble.composite import CompositeSpec
from ensemble.decision_weights import apply_decision_weights, fit_decision_weights
from ensemble.diversity import disagreement, error_correlation, member_accuracy, oracle_rate
from ensemble.honest import (
    best_member_method,
    choose_best_member,
    crossfit_predictions,
    make_folds,
    paired_bootstrap_gain,
    paired_bootstrap_gains,
    resampling_scheme,
)
from ensemble.metrics import macro_f1
from ensemble.recipe import Recipe
from ensemble.recipe import apply as apply_recipe
from ensemble.selection import caruana_selection, fit_simplex_weights, selection_path
from ensemble.stacking import fit_stacker, stacker_scores
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
    "Comparison",
    "CompositeSpec",
    "Recipe",
    "apply_recipe",
    "apply_temperature",
    "best_member_method",
    "caruana_selection",
    "choose_best_member",
    "compare",
    "apply_decision_weights",
    "fit_decision_weights",
    "fit_stacker",
    "pick_best",
    "selection_path",
    "stacker_scores",
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
    "resampling_scheme",
    "soft_vote",
    "vote_counts",
    "vote_shares",
]
