"""Turn the vote command's `--rule` into a fitted recipe, keyed by member name.

Which rules exist, and which of them are fitted, is read from the rules table (ensemble/rules.py). Fixed
rules use the user's weights as given. Fitted rules (and `best`) are fitted on all validation rows for the
submission, while their reported score comes from cross-fitting, so the number a user reads was earned on
rows the fit never saw.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ensemble.rules as rules
from core.errors import UserError
from ensemble.compare import F1W, Comparison, pick_best
from ensemble.recipe import Recipe

N_SPLITS = 5


def all_rules() -> list[str]:
    """Every name `--rule` accepts, read from the rules table when asked (a registered rule shows up)."""
    return rules.rule_names(composite=True)


def fitted_rules() -> list[str]:
    return [name for name in all_rules() if rules.is_fitted(name)]


ALL_RULES = tuple(all_rules())        # the table as imported; all_rules() also sees rules registered later
FITTED_RULES = tuple(fitted_rules())


def needs_comparison(rule: str) -> bool:
    return rule in all_rules() and rules.is_fitted(rule)


def choose_recipe(rule: str, weights: Mapping[str, float], composite: dict | None,
                  comparison: Comparison | None) -> Recipe:
    """The recipe for `rule`: a fitted rule is read from the comparison (fitted on all rows), a fixed
    rule is made of the user's weights."""
    if rule not in all_rules():
        raise UserError(f"unknown rule '{rule}'; choose one of {', '.join(all_rules())}")
    per_task = rule in rules.RULES and rules.RULES[rule].composite
    if per_task and composite is None:
        raise UserError(f"rule '{rule}' needs composite labels; these members' data declares none")
    if needs_comparison(rule) and comparison is None:
        raise UserError(f"rule '{rule}' is fitted and scored by cross-fitting, which needs at least two members")
    if rule == "best":
        return pick_best(comparison)
    if needs_comparison(rule):
        row = comparison.table.set_index("method").loc[rule]
        recipe = comparison.recipes[rule]
        recipe.note = (f"{rule}: fitted on all {comparison.n_rows} validation rows; honest macro-F1 "
                       f"{row['f1_macro_honest']:.4f} by {comparison.n_splits}-fold cross-fit over "
                       f"{comparison.scheme} (in-sample {row['f1_macro_val']:.4f}); gain vs best member "
                       f"{row['gain']:+.4f} [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]: {row['verdict']}")
        return recipe
    spec: dict[str, Any] | None = composite if per_task else None
    return Recipe(rules.RULES[rule].apply, dict(weights), composite=spec, method=rule,
                  note="weights as given on the command line")


__all__ = ["ALL_RULES", "F1W", "FITTED_RULES", "N_SPLITS", "all_rules", "choose_recipe", "needs_comparison"]
