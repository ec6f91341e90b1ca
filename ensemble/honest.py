"""Honest estimates of what an ensemble gains over its best member.

Anything fitted on validation rows (temperatures, weights, a selection, even the
choice of the "best" member) looks better on those rows than it will on new
data. Cross-fitting predicts every validation row with a method fitted on the
other folds only, and the paired bootstrap puts a confidence interval on the
macro-F1 difference between two such prediction vectors (ensemble/bootstrap.py).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

from ensemble._checks import as_labels, as_probs, check_names
from ensemble.bootstrap import (  # noqa: F401  (re-exported: the honest API and its tests read them here)
    VERDICTS,
    _group_codes,
    _resample_pattern_counts,
    paired_bootstrap_gain,
    paired_bootstrap_gains,
    verdict,
)
from ensemble.metrics import macro_f1_many

# predictor(probs[members, rows, classes]) -> labels[rows]
Predictor = Callable[[np.ndarray], np.ndarray]
# method(train_probs, train_y, names) -> predictor; it sees the training rows only.
Method = Callable[[np.ndarray, np.ndarray, list[str]], Predictor]
Folds = list[tuple[np.ndarray, np.ndarray]]


def make_folds(y: np.ndarray, n_splits: int = 5, seed: int = 0, groups: np.ndarray | None = None) -> Folds:
    """(train_rows, test_rows) pairs covering every row once as a test row.

    With `groups` (the split file's `group` column: the rows of one person), a
    group never spans two folds (StratifiedGroupKFold), because its rows are
    correlated and a method fitted on some of them would be scored on their
    near-copies. Without groups: stratified when every class has at least
    `n_splits` rows; otherwise plain shuffled KFold, because StratifiedKFold
    cannot spread a tiny class.

    Parameters
    ----------
    y : ndarray of int, shape (n_rows,)
        True labels.
    n_splits : int
    seed : int
    groups : ndarray, shape (n_rows,), optional
        Group label per row; a group never spans two folds.

    Returns
    -------
    list of (train_rows, test_rows)
        Index arrays; every row is a test row exactly once.
    """
    y = as_labels(y)
    if n_splits < 2:
        raise ValueError(f"n_splits must be at least 2; got {n_splits}")
    if len(y) < n_splits:
        raise ValueError(f"cannot cross-fit {len(y)} rows in {n_splits} folds")
    _, class_counts = np.unique(y, return_counts=True)
    if groups is not None:
        groups = _group_codes(groups, len(y))
        n_groups = int(groups.max()) + 1
        if n_groups < n_splits:
            raise ValueError(f"cannot cross-fit {n_groups} groups in {n_splits} folds")
        if n_groups < len(y):
            # GroupKFold is deterministic (it balances fold sizes); StratifiedGroupKFold shuffles with the seed.
            splitter = (StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
                        if class_counts.min() >= n_splits else GroupKFold(n_splits=n_splits))
            return [(train, test) for train, test in splitter.split(np.zeros(len(y)), y, groups)]
        # Every row its own group: the plain folds below are the same thing, and keep their old seeds.
    if class_counts.min() >= n_splits:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(train, test) for train, test in splitter.split(np.zeros(len(y)), y)]


def resampling_scheme(groups: np.ndarray | None, n_rows: int) -> str:
    """How rows are grouped for cross-fitting and the bootstrap, in words, for tables and reports.

    Parameters
    ----------
    groups : ndarray, shape (n_rows,), optional
    n_rows : int

    Returns
    -------
    str
    """
    if groups is None:
        return "rows (no groups known)"
    n_groups = int(_group_codes(groups, n_rows).max()) + 1
    if n_groups == n_rows:
        return f"rows (every one of the {n_rows} rows is its own group)"
    return f"groups ({n_groups} groups over {n_rows} rows: grouped folds, cluster bootstrap)"


def crossfit_many(
    methods: Mapping[str, Method],
    probs: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    folds: Folds,
) -> dict[str, np.ndarray]:
    """Cross-fitted labels of several methods on shared folds (each fold is sliced once).

    Parameters
    ----------
    methods : mapping of str to Method
        method(train_probs, train_y, names) -> predictor(test_probs) -> labels.
    probs : ndarray, shape (n_members, n_rows, n_classes)
        Member probabilities, members in the order of `names`.
    y : ndarray of int, shape (n_rows,)
        True labels.
    names : sequence of str, length n_members
        Member names.
    folds : list of (train_rows, test_rows)

    Returns
    -------
    dict of str to ndarray of int, shape (n_rows,)
        Each method's cross-fitted labels (shape (k, n_rows) for a method whose predictor returns (k, rows)).
    """
    probs = as_probs(probs)
    names = check_names(names, probs.shape[0])
    y = as_labels(y, probs.shape[1])
    folds = list(folds)
    for train, test in folds:
        if np.intersect1d(train, test).size:
            raise ValueError("a fold's training and test rows overlap")

    def fit_fold(fold: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
        train, test = fold
        train_probs, test_probs, train_y = probs[:, train], probs[:, test], y[train]
        return {key: np.asarray(method(train_probs, train_y, list(names))(test_probs))
                for key, method in methods.items()}

    # Folds are independent and numpy releases the GIL in the heavy loops, so threads use every core.
    with ThreadPoolExecutor(max_workers=max(1, min(len(folds), os.cpu_count() or 1))) as pool:
        fold_labels = list(pool.map(fit_fold, folds))
    out: dict[str, np.ndarray] = {}
    for (_, test), labels_by_key in zip(folds, fold_labels):
        for key, labels in labels_by_key.items():
            if labels.ndim not in (1, 2) or labels.shape[-1] != len(test):
                raise ValueError(f"method {key!r} returned labels of shape {labels.shape} for {len(test)} rows")
            if key not in out:
                out[key] = np.full(labels.shape[:-1] + (len(y),), -1, dtype=np.int64)
            out[key][..., test] = labels
    missing = [key for key, labels in out.items() if (labels < 0).any()]
    if missing:
        raise ValueError(f"the folds do not cover every row (methods {missing})")
    return out


def crossfit_predictions(
    method: Method,
    probs: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    n_splits: int = 5,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Labels for every row, each predicted by `method` fitted on the OTHER folds only.

    `method(train_probs, train_y, names)` must return a predictor
    `predictor(probs) -> labels`. Folds come from `make_folds(y, n_splits, seed, groups)`.

    Parameters
    ----------
    method : Method
    probs : ndarray, shape (n_members, n_rows, n_classes)
        Member probabilities, members in the order of `names`.
    y : ndarray of int, shape (n_rows,)
        True labels.
    names : sequence of str, length n_members
        Member names.
    n_splits, seed, groups
        As in `make_folds`.

    Returns
    -------
    ndarray of int, shape (n_rows,)
    """
    folds = make_folds(y, n_splits, seed, groups)
    return crossfit_many({"method": method}, probs, y, names, folds)["method"]


def choose_best_member(probs: np.ndarray, y: np.ndarray, names: Sequence[str]) -> str:
    """Name of the member with the best macro F1 on the given rows; ties go to the first name.

    Parameters
    ----------
    probs : ndarray, shape (n_members, n_rows, n_classes)
        Member probabilities, members in the order of `names`.
    y : ndarray of int, shape (n_rows,)
        True labels.
    names : sequence of str, length n_members
        Member names.

    Returns
    -------
    str
    """
    probs = as_probs(probs)
    names = check_names(names, probs.shape[0])
    y = as_labels(y, probs.shape[1])
    scores = macro_f1_many(y, probs.argmax(axis=2), probs.shape[2])
    by_name = np.argsort(names)
    return names[int(by_name[np.argmax(scores[by_name])])]


def best_member_method(probs: np.ndarray, y: np.ndarray, names: list[str]) -> Predictor:
    """Pick the best member on the rows it is given (see `choose_best_member`); predict with its argmax.

    Cross-fitted, this is the honest baseline: the best member is chosen on the
    training folds, never on the rows it is scored on.

    Parameters
    ----------
    probs : ndarray, shape (n_members, n_rows, n_classes)
        Member probabilities, members in the order of `names`.
    y : ndarray of int, shape (n_rows,)
        True labels.
    names : sequence of str, length n_members
        Member names.

    Returns
    -------
    Predictor
        test_probs (n_members, n_test, n_classes) -> labels (n_test,).
    """
    chosen = list(names).index(choose_best_member(probs, y, names))

    def predict(test_probs: np.ndarray) -> np.ndarray:
        return test_probs[chosen].argmax(axis=1).astype(np.int64)

    return predict
