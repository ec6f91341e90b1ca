"""The submitted recipe's row of the honest table, taken from the comparison and never recomputed.

A recipe is honest to score only when the comparison fitted the very same recipe: then its row is that
rule's row (cross-fitted score, gain, interval and verdict). Anything else (weights given by hand, a recipe
file edited or fitted on other rows) has no honest score and no gain, and a sentence says why; its
in-sample score stays in `f1_macro_val`, the column that says it is in-sample.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import ensemble.rules as rules
from ensemble.compare import COLUMNS, Comparison
from ensemble.recipe import Recipe

_IGNORED = ("note", "method", "groups", "group_rule", "cost_ms")  # say where a recipe came from, not what it does


def _numbers_match(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_numbers_match(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_numbers_match(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return bool(np.isclose(a, b, rtol=1e-9, atol=1e-12))
    return a == b


def same_fit(a: Recipe, b: Recipe) -> bool:
    """True when two recipes predict alike: the same kernel, members, weight ratios and fitted parameters."""
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        for key in _IGNORED:
            d.pop(key, None)
        total = sum(d["members"].values())
        d["members"] = {k: v / total for k, v in d["members"].items()}
    return _numbers_match(da, db)


def _fitted(method: str) -> bool:
    try:
        return rules.is_fitted(method)
    except KeyError:
        return False


def _why_not(recipe: Recipe, comparison: Comparison) -> str:
    method = recipe.method
    learned = bool(recipe.temperatures or recipe.stack or recipe.blend or recipe.decision_weights)
    if method in comparison.recipes and (learned or _fitted(method)):
        return (f"the recipe's parameters differ from what rule `{method}` fits on these validation rows (edited "
                f"by hand, or fitted on other rows), so it cannot be cross-fitted: no honest score and no gain "
                f"are given; its `f1_macro_val` is in-sample.")
    if not learned and not _fitted(method):
        return ("its weights were given by hand, not fitted here; weights chosen by looking at these rows would be "
                "scored on the rows they were chosen on, so no honest score and no gain are given; its "
                "`f1_macro_val` is in-sample. The cross-fitted rows are the honest figures.")
    return (f"rule `{method or recipe.rule}` with these parameters is not in this comparison, so it cannot be "
            f"cross-fitted here: no honest score and no gain are given.")


def submitted_row(comparison: Comparison, recipe: Recipe, label: str,
                  in_sample_f1: float) -> tuple[dict[str, Any], str, str]:
    """(row, the comparison method it was taken from or "", why it is blank or "")."""
    table = comparison.table.set_index("method")
    candidates = [recipe.method] if recipe.method in comparison.recipes else list(comparison.recipes)
    for method in candidates:
        if same_fit(recipe, comparison.recipes[method]):
            found = table.loc[method]
            row = {col: found[col] for col in COLUMNS if col != "method"}
            row.update(method=f"submitted ({label})", kind="submitted")
            return row, method, ""
    row = {col: np.nan for col in COLUMNS}
    row.update(method=f"submitted ({label})", kind="submitted", f1_macro_val=in_sample_f1, verdict=None)
    return row, "", _why_not(recipe, comparison)
