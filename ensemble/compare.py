"""One table comparing every member and every combination rule on validation rows, honestly.

Each method is a function fitted on rows it is given that returns a Recipe.
Honest scores come from cross-fitting (each row predicted by the method fitted
on the other folds); `f1_macro_val` fits and scores on the same rows, for
contrast. Gains are measured against the best member chosen inside the
cross-fit, i.e. never chosen on the rows it is scored on.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ensemble._checks import as_labels, stack_members
from ensemble._math import one_blas_thread
from ensemble.calibration import fit_temperatures
from ensemble.composite import CompositeSpec
from ensemble.honest import Predictor, choose_best_member, crossfit_many, make_folds, paired_bootstrap_gains
from ensemble.metrics import macro_f1_many
from ensemble.recipe import Recipe, apply_stacked
from ensemble.selection import caruana_selection, fit_simplex_weights

Fit = Callable[[np.ndarray, np.ndarray, list[str]], Recipe]

COLUMNS = [
    "method", "kind", "f1_macro_honest", "acc_honest", "f1_macro_val",
    "gain", "ci_low", "ci_high", "excludes_zero",
]  # fmt: skip


@dataclass(frozen=True)
class _Method:
    name: str
    kind: str  # "member", "baseline" (best member) or "ensemble"
    fit: Fit
    learns: bool  # False: nothing is fitted, so in-sample predictions are already honest


def _equal(names: list[str]) -> dict[str, float]:
    return {n: 1.0 for n in names}


def _fixed_rule(rule: str, composite: dict[str, Any] | None = None) -> Fit:
    """A rule with equal weights: nothing is learned from the rows."""
    return lambda probs, y, names: Recipe(rule, _equal(names), composite=composite)


def _single(name: str) -> Fit:
    return lambda probs, y, names: Recipe("soft", {name: 1.0})


def _best_member(probs: np.ndarray, y: np.ndarray, names: list[str]) -> Recipe:
    return Recipe("soft", {choose_best_member(probs, y, names): 1.0})


def _temperature_soft(probs: np.ndarray, y: np.ndarray, names: list[str]) -> Recipe:
    return Recipe("soft", _equal(names), temperatures=fit_temperatures(probs, y, names))


def _simplex(probs: np.ndarray, y: np.ndarray, names: list[str]) -> Recipe:
    return Recipe("soft", fit_simplex_weights(probs, y, names))


def _caruana(seed: int, options: Mapping[str, Any]) -> Fit:
    return lambda probs, y, names: Recipe("soft", caruana_selection(probs, y, names, seed=seed, **options))


def _methods(
    names: list[str], composite: CompositeSpec | None, seed: int, caruana: Mapping[str, Any]
) -> list[_Method]:
    """Every method, simplest first, so that ties in honest F1 favour the simpler one."""
    methods = [_Method(f"member:{name}", "member", _single(name), False) for name in names]
    methods.append(_Method("best_member", "baseline", _best_member, True))
    methods += [_Method(rule, "ensemble", _fixed_rule(rule), False) for rule in ("hard", "soft", "geometric", "logit")]
    if composite is not None:
        spec = composite.to_dict()
        methods += [
            _Method(rule, "ensemble", _fixed_rule(rule, spec), False) for rule in ("per_task_hard", "per_task_soft")
        ]
    methods += [
        _Method("soft+temperature", "ensemble", _temperature_soft, True),
        _Method("simplex", "ensemble", _simplex, True),
        _Method("caruana", "ensemble", _caruana(seed, caruana), True),
    ]
    return methods


def _as_predictor_fit(fit: Fit) -> Callable[[np.ndarray, np.ndarray, list[str]], Predictor]:
    def method(probs: np.ndarray, y: np.ndarray, names: list[str]) -> Predictor:
        recipe = fit(probs, y, names)
        return lambda test_probs: apply_stacked(recipe, test_probs, names)[0]

    return method


def _compare(
    probs_by_name: Mapping[str, np.ndarray],
    y: np.ndarray,
    n_classes: int,
    composite: CompositeSpec | Mapping[str, Any] | None,
    seed: int,
    n_splits: int,
    n_boot: int,
    caruana: Mapping[str, Any] | None,
) -> tuple[pd.DataFrame, dict[str, Recipe]]:
    names, probs = stack_members(probs_by_name)
    y = as_labels(y, probs.shape[1])
    if probs.shape[2] != n_classes:
        raise ValueError(f"members have {probs.shape[2]} classes but n_classes is {n_classes}")
    if y.max() >= n_classes:
        raise ValueError(f"label {int(y.max())} is out of range for {n_classes} classes")
    if composite is not None and not isinstance(composite, CompositeSpec):
        composite = CompositeSpec.from_dict(composite)
    if composite is not None and composite.n_classes != n_classes:
        raise ValueError(f"composite {composite.names} has {composite.n_classes} classes, not {n_classes}")

    with one_blas_thread():
        return _compare_stacked(names, probs, y, n_classes, composite, seed, n_splits, n_boot, caruana)


def _compare_stacked(
    names: list[str],
    probs: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    composite: CompositeSpec | None,
    seed: int,
    n_splits: int,
    n_boot: int,
    caruana: Mapping[str, Any] | None,
) -> tuple[pd.DataFrame, dict[str, Recipe]]:
    methods = _methods(names, composite, seed, dict(caruana or {}))
    labels = range(n_classes)
    recipes: dict[str, Recipe] = {}
    in_sample: dict[str, np.ndarray] = {}
    for m in methods:
        recipes[m.name] = m.fit(probs, y, names)
        in_sample[m.name] = apply_stacked(recipes[m.name], probs, names)[0]

    folds = make_folds(y, n_splits, seed)
    learned = {m.name: _as_predictor_fit(m.fit) for m in methods if m.learns}
    honest = dict(in_sample)
    honest.update(crossfit_many(learned, probs, y, names, folds))

    ensembles = [m.name for m in methods if m.kind == "ensemble"]
    boot = paired_bootstrap_gains(
        y, {name: honest[name] for name in ensembles}, honest["best_member"], n_boot, seed, labels
    )
    order = [m.name for m in methods]
    f1_honest = macro_f1_many(y, np.stack([honest[k] for k in order]), n_classes)
    f1_val = macro_f1_many(y, np.stack([in_sample[k] for k in order]), n_classes)
    rows = []
    for i, m in enumerate(methods):
        row: dict[str, Any] = {
            "method": m.name,
            "kind": m.kind,
            "f1_macro_honest": float(f1_honest[i]),
            "acc_honest": float(np.mean(honest[m.name] == y)),
            "f1_macro_val": float(f1_val[i]),
            "gain": np.nan, "ci_low": np.nan, "ci_high": np.nan, "excludes_zero": pd.NA,
        }  # fmt: skip
        if m.name in boot:
            b = boot[m.name]
            row.update(gain=b["gain"], ci_low=b["low"], ci_high=b["high"], excludes_zero=b["excludes_zero"])
        rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["excludes_zero"] = table["excludes_zero"].astype("boolean")
    return table, recipes


def compare_rules(
    probs_by_name: Mapping[str, np.ndarray],
    y: np.ndarray,
    n_classes: int,
    composite: CompositeSpec | Mapping[str, Any] | None = None,
    seed: int = 0,
    *,
    n_splits: int = 5,
    n_boot: int = 1000,
    caruana: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """One row per method: each member, the cross-fitted best member, hard, soft, geometric,
    logit, per-task votes (with `composite`), soft+temperature, simplex weights and Caruana
    selection (options in `caruana`, passed to `caruana_selection`).

    Columns: method, kind, f1_macro_honest, acc_honest (cross-fitted), f1_macro_val
    (fitted and scored on the same rows) and, for ensembles, the paired-bootstrap macro-F1
    gain over the cross-fitted best member with its 95% CI and whether it excludes zero
    (all ensembles on the same bootstrap resamples).
    """
    return _compare(probs_by_name, y, n_classes, composite, seed, n_splits, n_boot, caruana)[0]


def best_recipe(
    probs_by_name: Mapping[str, np.ndarray],
    y: np.ndarray,
    n_classes: int,
    composite: CompositeSpec | Mapping[str, Any] | None = None,
    seed: int = 0,
    *,
    n_splits: int = 5,
    n_boot: int = 1000,
    caruana: Mapping[str, Any] | None = None,
) -> Recipe:
    """The recipe, fitted on all rows, of the method with the best honest macro F1.

    Candidates are the cross-fitted best member and the ensembles (single members
    are left out: picking the best of them on the scored rows is exactly the
    peeking that cross-fitting avoids). Ties go to the simpler method.
    """
    table, recipes = compare_and_fit(probs_by_name, y, n_classes, composite, seed, n_splits=n_splits, n_boot=n_boot,
                                     caruana=caruana)
    return pick_best(table, recipes, n_splits, len(y))


def compare_and_fit(
    probs_by_name: Mapping[str, np.ndarray],
    y: np.ndarray,
    n_classes: int,
    composite: CompositeSpec | Mapping[str, Any] | None = None,
    seed: int = 0,
    *,
    n_splits: int = 5,
    n_boot: int = 1000,
    caruana: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, dict[str, Recipe]]:
    """`compare_rules`' table plus every method's recipe fitted on all rows, keyed by method name."""
    return _compare(probs_by_name, y, n_classes, composite, seed, n_splits, n_boot, caruana)


def pick_best(table: pd.DataFrame, recipes: Mapping[str, Recipe], n_splits: int, n_rows: int) -> Recipe:
    """The recipe of the best honest method (single members excluded), with a note saying why."""
    eligible = table[table["kind"] != "member"]
    row = eligible.loc[eligible["f1_macro_honest"].idxmax()]
    recipe = recipes[row["method"]]
    note = (
        f"{row['method']}: honest macro-F1 {row['f1_macro_honest']:.4f} "
        f"(in-sample {row['f1_macro_val']:.4f}), {n_splits}-fold cross-fit over {n_rows} rows"
    )
    if row["kind"] == "ensemble":
        note += (
            f"; gain vs best member {row['gain']:+.4f} "
            f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}] (95% paired bootstrap)"
        )
    recipe.note = note
    return recipe
