"""Turn the vote command's `--rule` into a fitted recipe, keyed by member name.

Fixed rules use the user's weights as given. Fitted rules (temperatures, simplex
weights, Caruana selection, `best`) are fitted on all validation rows for the
submission, while their reported score comes from cross-fitting, so the number a
user reads was earned on rows the fit never saw.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from core.errors import UserError
from ensemble.compare import compare_and_fit, pick_best
from ensemble.recipe import FLAT_RULES, PER_TASK_RULES, Recipe

FITTED_RULES = ("soft+temperature", "simplex", "caruana", "best")
ALL_RULES = FLAT_RULES + PER_TASK_RULES + FITTED_RULES
N_SPLITS = 5


def choose_recipe(rule: str, probs_by_name: Mapping[str, np.ndarray], y: np.ndarray, n_classes: int,
                  weights: Mapping[str, float], composite: dict | None, need_table: bool = False,
                  seed: int = 0) -> tuple[Recipe, pd.DataFrame | None]:
    """Return the recipe for `rule` and, when fitted or asked for, the honest comparison table."""
    if rule in PER_TASK_RULES and composite is None:
        raise UserError(f"rule '{rule}' needs composite labels; these members' data declares none")
    table = recipes = None
    if rule in FITTED_RULES or need_table:
        if len(probs_by_name) < 2:
            raise UserError(f"rule '{rule}' and --compare need at least two members")
        table, recipes = compare_and_fit(probs_by_name, y, n_classes, composite, seed, n_splits=N_SPLITS)
    if rule == "best":
        return pick_best(table, recipes, N_SPLITS, len(y)), table
    if rule in FITTED_RULES:
        row = table.set_index("method").loc[rule]
        recipe = recipes[rule]
        recipe.note = (f"{rule}: fitted on all {len(y)} validation rows; honest macro-F1 {row['f1_macro_honest']:.4f} "
                       f"by {N_SPLITS}-fold cross-fit (in-sample {row['f1_macro_val']:.4f})")
        return recipe, table
    spec: dict[str, Any] | None = composite if rule in PER_TASK_RULES else None
    return Recipe(rule, dict(weights), composite=spec, note="weights as given on the command line"), table
