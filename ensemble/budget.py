"""The best ensemble within an inference budget: an ensemble of K members costs K forward passes.

Costs are milliseconds per image, measured when each member predicted (predict/run.py); a fold group
costs the sum of its fold models. `frontier` is the cost-accuracy frontier the report draws: members are
added greedily by honest macro-F1 gain per millisecond, each subset scored by one rule, cross-fitted.
`subsets_within` lists the subsets `vote --rule best --budget-ms N` chooses among.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

import ensemble.rules as rules
from core.errors import UserError
from ensemble._checks import stack_members
from ensemble.honest import crossfit_many, make_folds
from ensemble.metrics import macro_f1_many
from ensemble.recipe import apply_stacked

MAX_MEMBERS = 12  # beyond this the frontier's K² cross-fits, and the subsets, are too many to list


def check_costs(costs: Mapping[str, float], names: Sequence[str]) -> dict[str, float]:
    """Every member's cost, or a one-line error naming the member whose cost was never measured.

    Parameters
    ----------
    costs : mapping of str to float
        Milliseconds per image.
    names : sequence of str

    Returns
    -------
    dict of str to float
    """
    for name in names:
        value = costs.get(name, float("nan"))
        if not (np.isfinite(value) and value > 0):
            raise UserError(f"member '{name}' has no measured inference cost (predictions imported, or cached before "
                            f"costs were measured); predict it again with python -m scripts.predict --members {name} "
                            f"--force")
    return {name: float(costs[name]) for name in names}


def check_budget(costs: Mapping[str, float], budget_ms: float) -> None:
    """A budget below the cheapest member fits no ensemble at all: one line naming that member's cost.

    Parameters
    ----------
    costs : mapping of str to float
    budget_ms : float

    Returns
    -------
    None
    """
    cheapest = min(costs, key=costs.get)
    if budget_ms < costs[cheapest]:
        raise UserError(f"--budget-ms {budget_ms:g} is below the cheapest member, '{cheapest}' at "
                        f"{costs[cheapest]:.3g} ms per image; no ensemble fits")


def subsets_within(costs: Mapping[str, float], budget_ms: float) -> list[list[str]]:
    """The largest subsets that fit: every subset within the budget to which no further member fits.

    Parameters
    ----------
    costs : mapping of str to float
    budget_ms : float

    Returns
    -------
    list of list of str
    """
    names = sorted(costs)
    if len(names) > MAX_MEMBERS:
        raise UserError(f"--budget-ms chooses among subsets of at most {MAX_MEMBERS} members; got {len(names)}")
    fits = [list(c) for k in range(1, len(names) + 1) for c in combinations(names, k)
            if sum(costs[n] for n in c) <= budget_ms]
    return [s for s in fits if not any(set(s) < set(t) for t in fits)]


def _scorer(probs: np.ndarray, y: np.ndarray, names: list[str], rule: str, seed: int, folds):
    n_classes = probs.shape[2]

    def score(subset: list[str]) -> float:
        idx = [names.index(n) for n in subset]
        sub = probs[idx]
        if len(subset) == 1:
            labels = sub[0].argmax(1)
        else:
            fit = rules.Fitter(rules.Context(list(subset), seed=seed)).fit_of(rule)
            if rules.is_fitted(rule):
                def method(p, yy, nn):
                    recipe = fit(p, yy, nn)
                    return lambda test: apply_stacked(recipe, test, nn)[0]
                labels = crossfit_many({rule: method}, sub, y, list(subset), folds)[rule]
            else:
                labels = apply_stacked(fit(sub, y, list(subset)), sub, list(subset))[0]
        return float(macro_f1_many(y, labels[None], n_classes)[0])
    return score


def frontier(probs_by_name: Mapping[str, np.ndarray], y: np.ndarray, costs: Mapping[str, float], rule: str = "soft",
             *, seed: int = 0, n_splits: int = 5, groups: np.ndarray | None = None) -> pd.DataFrame:
    """The greedy cost-accuracy path: one row per step (the members so far, their cost, honest macro F1),
    plus the best single member if the path does not start with it. Columns: members, added, cost_ms,
    f1_macro_honest, on_frontier (no cheaper point scores as well), mark ("best single member", "full
    ensemble" or "").

    Parameters
    ----------
    probs_by_name : mapping of str to ndarray, each shape (n_rows, n_classes)
    y : ndarray of int, shape (n_rows,)
        True labels.
    costs : mapping of str to float
    rule : str
    seed, n_splits, groups
        As in `make_folds`.

    Returns
    -------
    DataFrame
    """
    names, probs = stack_members(probs_by_name)
    if len(names) > MAX_MEMBERS:
        raise ValueError(f"the frontier is drawn for at most {MAX_MEMBERS} members")
    score = _scorer(probs, np.asarray(y), names, rule, seed, make_folds(np.asarray(y), n_splits, seed, groups))
    singles = {n: score([n]) for n in names}
    chosen: list[str] = []
    current, rows = 0.0, []
    while len(chosen) < len(names):
        scored = {n: singles[n] if not chosen else score(chosen + [n]) for n in names if n not in chosen}
        # Gain per millisecond; among equals the cheaper member, then the name, so the path is deterministic.
        pick = max(scored, key=lambda n: ((scored[n] - current) / costs[n], -costs[n], n))
        chosen.append(pick)
        current = scored[pick]
        rows.append({"members": ", ".join(chosen), "added": pick, "cost_ms": sum(costs[n] for n in chosen),
                     "f1_macro_honest": current, "mark": ""})
    best = max(names, key=lambda n: (singles[n], -costs[n]))
    if rows[0]["added"] == best:
        rows[0]["mark"] = "best single member"
    else:
        rows.append({"members": best, "added": best, "cost_ms": costs[best], "f1_macro_honest": singles[best],
                     "mark": "best single member"})
    rows[len(names) - 1]["mark"] = "full ensemble"
    table = pd.DataFrame(rows).sort_values(["cost_ms", "f1_macro_honest"], ascending=[True, False])
    table["on_frontier"] = table["f1_macro_honest"] > table["f1_macro_honest"].cummax().shift(fill_value=-1.0)
    return table.reset_index(drop=True)


def best_within_budget(probs_by_name: Mapping[str, np.ndarray], y: np.ndarray, n_classes: int,
                       costs: Mapping[str, float], budget_ms: float, *, composite=None, groups=None, seed: int = 0):
    """`--rule best` restricted to the subsets that fit the budget: (recipe, its subset's comparison or None).

    Each largest subset that fits is compared honestly (every rule, cross-fitted) and its best rule kept;
    a one-member subset scores as that member. The recipe with the best honest macro F1 wins, and its
    note and `cost_ms` say what it costs.

    Parameters
    ----------
    probs_by_name : mapping of str to ndarray, each shape (n_rows, n_classes)
    y : ndarray of int, shape (n_rows,)
        True labels.
    n_classes : int
    costs : mapping of str to float
    budget_ms : float
    composite, groups, seed
        As in `compare`.

    Returns
    -------
    (Recipe, Comparison or None)
    """
    from ensemble.compare import compare, pick_best  # compare imports the rules; this module is read by the report
    from ensemble.recipe import Recipe

    check_budget(costs, budget_ms)
    best: tuple[float, Recipe, object] | None = None
    for subset in subsets_within(costs, budget_ms):
        if len(subset) == 1:
            f1 = float(macro_f1_many(np.asarray(y), probs_by_name[subset[0]].argmax(1)[None], n_classes)[0])
            recipe, comparison = Recipe("soft", {subset[0]: 1.0}, method=f"member:{subset[0]}"), None
            recipe.note = f"member {subset[0]} alone: macro F1 {f1:.4f} (nothing fitted)"
        else:
            comparison = compare({n: probs_by_name[n] for n in subset}, y, n_classes, composite, seed, groups=groups)
            recipe = pick_best(comparison)
            f1 = float(comparison.table.set_index("method").loc[recipe.method, "f1_macro_honest"])
        if best is None or f1 > best[0]:
            best = (f1, recipe, comparison)
    f1, recipe, comparison = best
    recipe.cost_ms = float(sum(costs[n] for n in recipe.members))
    recipe.note = (f"within --budget-ms {budget_ms:g}: members {', '.join(sorted(recipe.members))} cost "
                   f"{recipe.cost_ms:.3g} ms per image (measured when they predicted); {recipe.note}")
    return recipe, comparison
