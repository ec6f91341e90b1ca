"""Turn the vote command's `--rule` into a fitted recipe, keyed by member name.

Fixed rules use the user's weights as given. Fitted rules (temperatures, simplex
weights, Caruana selection, stacking, macro-F1 decision weights `+f1w`, `best`)
are fitted on all validation rows for the submission, while their reported score
comes from cross-fitting, so the number a user reads was earned on rows the fit
never saw.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.errors import UserError
from ensemble.compare import F1W, Comparison, method_names, pick_best
from ensemble.recipe import FLAT_RULES, PER_TASK_RULES, Recipe

FITTED_RULES = tuple(m for m in method_names(composite=True) if m not in FLAT_RULES + PER_TASK_RULES) + ("best",)
ALL_RULES = FLAT_RULES + PER_TASK_RULES + FITTED_RULES
N_SPLITS = 5


def needs_comparison(rule: str) -> bool:
    return rule in FITTED_RULES


def choose_recipe(rule: str, weights: Mapping[str, float], composite: dict | None,
                  comparison: Comparison | None) -> Recipe:
    """The recipe for `rule`: a fitted rule is read from the comparison (fitted on all rows), a fixed
    rule is made of the user's weights."""
    if rule not in ALL_RULES:
        raise UserError(f"unknown rule '{rule}'; choose one of {', '.join(ALL_RULES)}")
    if rule in PER_TASK_RULES and composite is None:
        raise UserError(f"rule '{rule}' needs composite labels; these members' data declares none")
    if rule in FITTED_RULES and comparison is None:
        raise UserError(f"rule '{rule}' is fitted and scored by cross-fitting, which needs at least two members")
    if rule == "best":
        return pick_best(comparison)
    if rule in FITTED_RULES:
        row = comparison.table.set_index("method").loc[rule]
        recipe = comparison.recipes[rule]
        recipe.note = (f"{rule}: fitted on all {comparison.n_rows} validation rows; honest macro-F1 "
                       f"{row['f1_macro_honest']:.4f} by {comparison.n_splits}-fold cross-fit over "
                       f"{comparison.scheme} (in-sample {row['f1_macro_val']:.4f})")
        return recipe
    spec: dict[str, Any] | None = composite if rule in PER_TASK_RULES else None
    return Recipe(rule, dict(weights), composite=spec, note="weights as given on the command line")


__all__ = ["ALL_RULES", "F1W", "FITTED_RULES", "N_SPLITS", "choose_recipe", "needs_comparison"]
