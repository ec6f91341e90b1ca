"""One table comparing every member and every combination rule on validation rows, honestly.

Each method is a function fitted on rows it is given that returns a Recipe.
Honest scores come from cross-fitting (each row predicted by the method fitted
on the other folds); `f1_macro_val` fits and scores on the same rows, for
contrast. Gains are measured against the best member chosen inside the
cross-fit, i.e. never chosen on the rows it is scored on. When the rows have
groups (the split file's `group` column), the folds keep a group together and
the bootstrap resamples groups (cluster bootstrap); `Comparison.scheme` says
which was used.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import ensemble.rules as rules
from ensemble._checks import as_labels, stack_members
from ensemble._math import one_blas_thread
from ensemble.composite import CompositeSpec
from ensemble.honest import (
    Folds,
    Predictor,
    choose_best_member,
    crossfit_many,
    make_folds,
    paired_bootstrap_gains,
    resampling_scheme,
)
from ensemble.metrics import macro_f1_many
from ensemble.recipe import Recipe, apply_stacked
from ensemble.rules import Fit
from ensemble.selection import selection_counts

COLUMNS = [
    "method", "kind", "f1_macro_honest", "acc_honest", "f1_macro_val",
    "gain", "ci_low", "ci_high", "verdict",
]  # fmt: skip
F1W = "+f1w"


@dataclass(frozen=True)
class _Method:
    name: str
    kind: str  # "member", "baseline" (best member) or "ensemble"
    fit: Fit
    learns: bool  # False: nothing is fitted, so in-sample predictions are already honest


def _single(name: str) -> Fit:
    return lambda probs, y, names: Recipe("soft", {name: 1.0}, method=f"member:{name}")


def _best_member(probs: np.ndarray, y: np.ndarray, names: list[str]) -> Recipe:
    return Recipe("soft", {choose_best_member(probs, y, names): 1.0}, method="best_member")


def _methods(names: list[str], fitter: rules.Fitter, extra: Sequence[str] = ()) -> list[_Method]:
    """Every member, the best member, then every rule of the rules table (simplest first, so that ties in
    honest F1 favour the simpler one)."""
    methods = [_Method(f"member:{name}", "member", _single(name), False) for name in names]
    methods.append(_Method("best_member", "baseline", _best_member, True))
    composite = fitter.ctx.composite
    methods += [_Method(name, "ensemble", fitter.fit_of(name), rules.is_fitted(name))
                for name in rules.default_methods(composite is not None, extra)]
    return methods


def method_names(n_members: int = 2, composite: bool = False) -> list[str]:
    """The ensemble methods a comparison can fit (for the CLI's --rule choices), in table order.

    Parameters
    ----------
    n_members : int
    composite : bool

    Returns
    -------
    list of str
    """
    return [n for n in rules.rule_names(composite) if n not in rules.META_RULES]


def _as_predictor_fit(fit: Fit) -> Callable[[np.ndarray, np.ndarray, list[str]], Predictor]:
    def method(probs: np.ndarray, y: np.ndarray, names: list[str]) -> Predictor:
        recipe = fit(probs, y, names)
        return lambda test_probs: apply_stacked(recipe, test_probs, names)[0]

    return method


@dataclass
class Comparison:
    """The honest comparison, computed once and read by the console, the recipe chooser and the report."""
    table: pd.DataFrame                  # one row per method; see `compare`
    recipes: dict[str, Recipe]           # each method fitted on all rows
    honest: dict[str, np.ndarray]        # cross-fitted labels per method ("best_member" is the baseline)
    scheme: str                          # how rows were grouped: grouped folds + cluster bootstrap, or rows
    n_splits: int
    n_boot: int
    n_rows: int
    curve: pd.DataFrame | None = None    # Caruana's selection curve: size, f1_in_sample, f1_crossfit
    groups: np.ndarray | None = field(default=None, repr=False)


def compare(
    probs_by_name: Mapping[str, np.ndarray],
    y: np.ndarray,
    n_classes: int,
    composite: CompositeSpec | Mapping[str, Any] | None = None,
    seed: int = 0,
    *,
    n_splits: int = 5,
    n_boot: int = 1000,
    caruana: Mapping[str, Any] | None = None,
    groups: np.ndarray | None = None,
    extra: Sequence[str] = (),
) -> Comparison:
    """Every method, honestly: each member, the cross-fitted best member, hard, soft, geometric,
    logit, per-task votes (with `composite`), soft+temperature, simplex weights, Caruana selection
    (options in `caruana`, passed to `caruana_selection`), size-controlled Caruana (`caruana+best`),
    stacking, and macro-F1 decision weights on top of soft, caruana+best and stack (plus any
    `+f1w` rule named in `extra`).

    Table columns: method, kind, f1_macro_honest, acc_honest (cross-fitted), f1_macro_val
    (fitted and scored on the same rows) and, for ensembles, the paired-bootstrap macro-F1
    gain over the cross-fitted best member with its 95% CI and its verdict (`better`, `worse` or
    `no evidence`: whether the interval lies above, below or around zero)
    (all ensembles on the same bootstrap resamples). With `groups` (one label per row), folds
    keep groups together and the bootstrap resamples whole groups.

    Parameters
    ----------
    probs_by_name : mapping of str to ndarray, each shape (n_rows, n_classes)
    y : ndarray of int, shape (n_rows,)
    n_classes, composite, seed, n_splits, n_boot, caruana, extra
        Classes, composite labels, seed, folds, resamples, `caruana_selection` options, more suffixed rules.
    groups : ndarray, shape (n_rows,), optional

    Returns
    -------
    Comparison
        table (one row per method), recipes, honest labels [n_rows] per method, curve.
    """
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
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != y.shape:
            raise ValueError(f"groups must have one value per row ({len(y)}); got shape {groups.shape}")

    with one_blas_thread():
        return _compare_stacked(names, probs, y, n_classes, composite, seed, n_splits, n_boot, dict(caruana or {}),
                                groups, extra)


def _compare_stacked(
    names: list[str],
    probs: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    composite: CompositeSpec | None,
    seed: int,
    n_splits: int,
    n_boot: int,
    caruana: dict[str, Any],
    groups: np.ndarray | None,
    extra: Sequence[str],
) -> Comparison:
    fitter = rules.Fitter(rules.Context(names, composite, seed, caruana))
    methods = _methods(names, fitter, extra)
    labels = range(n_classes)
    recipes: dict[str, Recipe] = {}
    in_sample: dict[str, np.ndarray] = {}
    for m in methods:
        recipes[m.name] = m.fit(probs, y, names)
        in_sample[m.name] = apply_stacked(recipes[m.name], probs, names)[0]

    folds = make_folds(y, n_splits, seed, groups)
    learned = {m.name: _as_predictor_fit(m.fit) for m in methods if m.learns}
    # The curve's folds are the rules' folds, so each fold's greedy pass is the one caruana+best was cut from.
    learned[_CURVE] = _curve_method(fitter.selection_path)
    honest = dict(in_sample)
    honest.update(crossfit_many(learned, probs, y, names, folds))
    curve = _curve_table(y, fitter.selection_path(probs, y, names)[1], honest.pop(_CURVE), n_classes)

    ensembles = [m.name for m in methods if m.kind == "ensemble"]
    boot = paired_bootstrap_gains(
        y, {name: honest[name] for name in ensembles}, honest["best_member"], n_boot, seed, labels, groups=groups
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
            "gain": np.nan, "ci_low": np.nan, "ci_high": np.nan, "verdict": None,
        }  # fmt: skip
        if m.name in boot:
            b = boot[m.name]
            row.update(gain=b["gain"], ci_low=b["low"], ci_high=b["high"], verdict=b["verdict"])
        rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    return Comparison(table, recipes, honest, resampling_scheme(groups, len(y)), n_splits, n_boot, len(y), curve,
                      groups)


_CURVE = "(selection curve)"
PathOf = Callable[[np.ndarray, np.ndarray, list[str]], tuple[np.ndarray, np.ndarray]]


def _path_labels(probs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Labels [steps, rows] of the soft vote after each greedy step, from pick counts [steps, members]:
    each step adds one pick to a running sum, as the selection itself scores it."""
    total = np.zeros(probs.shape[1:])
    before = np.zeros(probs.shape[0], dtype=np.int64)
    labels = np.empty((len(counts), probs.shape[1]), dtype=np.int64)
    for step, now in enumerate(counts):
        for m in np.flatnonzero(now != before):
            total += (now[m] - before[m]) * probs[m]
        labels[step], before = total.argmax(axis=1), now
    return labels


def _curve_method(path_of: PathOf) -> Callable[[np.ndarray, np.ndarray, list[str]], Predictor]:
    """A cross-fit method whose 'labels' are the selection path's labels at every step [steps, rows]."""
    def method(train_probs: np.ndarray, train_y: np.ndarray, names: list[str]) -> Predictor:
        counts, _ = path_of(train_probs, train_y, names)
        return lambda test_probs: _path_labels(test_probs, counts)
    return method


def _curve_table(y: np.ndarray, in_sample: np.ndarray, honest: np.ndarray, n_classes: int) -> pd.DataFrame:
    return pd.DataFrame({"size": np.arange(1, len(in_sample) + 1), "f1_in_sample": in_sample,
                         "f1_crossfit": macro_f1_many(y, honest, n_classes)})


def selection_curve(probs: np.ndarray, y: np.ndarray, names: list[str], folds: Folds, nbest: int | None,
                    n_classes: int, n_iterations: int = 50) -> pd.DataFrame:
    """Macro F1 of Caruana's ensemble against its size (number of greedy steps), in-sample and cross-fitted.

    The cross-fitted curve runs the selection on each fold's training rows and scores every step's
    ensemble on the fold's own rows: where it peaks is the honest size, where the in-sample curve keeps
    rising is overfitting. (`compare` draws the same curve from the passes its caruana+best rows run.)

    Parameters
    ----------
    probs : ndarray, shape (n_members, n_rows, n_classes)
    y : ndarray of int, shape (n_rows,)
    names : list of str, length n_members
    folds : list of (train_rows, test_rows)
    nbest : int, optional
        Candidates kept (see `caruana_selection`).
    n_classes : int
    n_iterations : int

    Returns
    -------
    DataFrame with n_iterations rows: size, f1_in_sample, f1_crossfit.
    """
    def path_of(p: np.ndarray, yy: np.ndarray, nn: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return selection_counts(p, yy, nn, n_iterations=n_iterations, nbest=nbest)

    honest = crossfit_many({_CURVE: _curve_method(path_of)}, probs, y, names, folds)[_CURVE]
    return _curve_table(y, path_of(probs, y, names)[1], honest, n_classes)


def pick_best(comparison: Comparison) -> Recipe:
    """The recipe of the best honest method (single members excluded), with a note saying why.

    Candidates are the cross-fitted best member and the ensembles (picking the best single
    member on the scored rows is exactly the peeking that cross-fitting avoids). Ties go to
    the simpler method.

    Parameters
    ----------
    comparison : Comparison

    Returns
    -------
    Recipe
        With a note saying why it won.
    """
    table = comparison.table
    eligible = table[table["kind"] != "member"]
    row = eligible.loc[eligible["f1_macro_honest"].idxmax()]
    recipe = comparison.recipes[row["method"]]
    note = (
        f"{row['method']}: honest macro-F1 {row['f1_macro_honest']:.4f} "
        f"(in-sample {row['f1_macro_val']:.4f}), {comparison.n_splits}-fold cross-fit over {comparison.n_rows} rows"
    )
    if row["kind"] == "ensemble":
        note += (
            f"; gain vs best member {row['gain']:+.4f} "
            f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}] (95% paired bootstrap over {comparison.scheme}): "
            f"{row['verdict']}"
        )
    recipe.note = note
    return recipe
