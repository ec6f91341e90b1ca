"""Stacking: a multinomial logistic regression on the members' log-probabilities.

The stacker sees, for each row, every member's log p over every class (members
in name order), and learns how much to trust each member for each class; its
regularisation C is chosen by an inner cross-validation on the rows it is
fitted on, so the outer cross-fit that scores it stays honest. The fitted
model is kept as plain numbers (coefficients, intercepts), never a pickle, and
predictions are recomputed from those numbers with numpy, so a saved recipe
regenerates them exactly.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from ensemble._checks import as_labels, as_probs, check_names
from ensemble._math import log_probs, one_blas_thread, softmax_inplace

C_GRID = (0.03, 0.3, 3.0)  # a decade apart; each value costs INNER_SPLITS fits
INNER_SPLITS = 3
# C is chosen on at most this many of the rows (a seeded random subset): out-of-fold tables reach tens of
# thousands of rows, and the choice of one regularisation strength needs far fewer.
INNER_ROWS = 2000
# An absent class (no training row) gets this intercept below the lowest one: never predicted, still finite.
_ABSENT = 50.0


def features(probs: np.ndarray) -> np.ndarray:
    """[rows, members * classes]: member-major log-probabilities (p clipped at 1e-12)."""
    probs = as_probs(probs)
    return log_probs(probs).transpose(1, 0, 2).reshape(probs.shape[1], -1)


def _fit_lr(x: np.ndarray, y: np.ndarray, c: float, n_classes: int,
            tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """(coef [classes, features], intercept [classes]) over all n_classes, absent classes never predicted."""
    present = np.unique(y)
    coef = np.zeros((n_classes, x.shape[1]))
    intercept = np.zeros(n_classes)
    if len(present) == 1:
        intercept[:] = -_ABSENT
        intercept[present[0]] = 0.0
        return coef, intercept
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(C=c, max_iter=300, tol=tol).fit(x, y)
    fitted_coef, fitted_b = model.coef_, model.intercept_
    if len(present) == 2:  # sklearn's binary model: one row for the positive class
        fitted_coef = np.vstack([-fitted_coef[0] / 2, fitted_coef[0] / 2])
        fitted_b = np.array([-fitted_b[0] / 2, fitted_b[0] / 2])
    coef[present] = fitted_coef
    intercept[:] = fitted_b.min() - _ABSENT
    intercept[present] = fitted_b
    return coef, intercept


def _log_loss(x: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> float:
    z = x @ coef.T + intercept
    z -= z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))


def _inner_folds(y: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    # Deal the rows of each class round-robin over the folds: stratified, and defined for tiny classes.
    fold_of = np.empty(len(y), dtype=np.int64)
    for cls in np.unique(y):
        rows = order[y[order] == cls]
        fold_of[rows] = (np.arange(len(rows)) + rng.integers(INNER_SPLITS)) % INNER_SPLITS
    return [(np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)) for k in range(INNER_SPLITS)
            if (fold_of == k).any() and (fold_of != k).any()]


def fit_stacker(probs: np.ndarray, y: np.ndarray, names: Sequence[str], n_classes: int | None = None,
                seed: int = 0) -> dict[str, Any]:
    """Fit the stacker; return its plain-number parameters (see `stacker_scores`).

    C is the grid value with the lowest mean held-out log loss over an inner
    stratified 3-fold split of these rows (at most INNER_ROWS of them; ties: the stronger
    regularisation); the final model is fitted on all rows with that C.
    """
    probs = as_probs(probs)
    names = check_names(names, probs.shape[0])
    y = as_labels(y, probs.shape[1])
    n_classes = n_classes or probs.shape[2]
    order = np.argsort(names)
    x = features(probs[order])
    losses = []
    sub = np.arange(len(y))
    if len(y) > INNER_ROWS:
        sub = np.sort(np.random.default_rng(seed).choice(len(y), INNER_ROWS, replace=False))
    folds = [(sub[train], sub[test]) for train, test in _inner_folds(y[sub], seed)]
    # Small problems: extra BLAS threads only wait for each other (10x slower on a busy box).
    with one_blas_thread():
        for c in C_GRID:
            # Ranking a few C values needs no tight optimum: a looser tolerance halves the fits' cost.
            fold_losses = [_log_loss(x[test], y[test], *_fit_lr(x[train], y[train], c, n_classes, tol=1e-3))
                           for train, test in folds]
            losses.append(np.mean(fold_losses) if fold_losses else 0.0)
        c_best = C_GRID[int(np.argmin(losses))]
        coef, intercept = _fit_lr(x, y, c_best, n_classes)
    return {"features": "log p (clipped at 1e-12) of each member in name order, classes in order",
            "members": [names[i] for i in order], "C": float(c_best),
            "coef": [[float(v) for v in row] for row in coef], "intercept": [float(v) for v in intercept]}


def check_stacker(params: Mapping[str, Any], n_members: int) -> None:
    """Shapes of saved stacker parameters; raises ValueError naming the field at fault."""
    coef, intercept = np.asarray(params.get("coef"), dtype=np.float64), np.asarray(params.get("intercept"),
                                                                                   dtype=np.float64)
    if coef.ndim != 2 or intercept.ndim != 1 or coef.shape[0] != intercept.shape[0]:
        raise ValueError("stack: 'coef' must be [classes][features] and 'intercept' one number per class")
    if coef.shape[1] != n_members * coef.shape[0]:
        raise ValueError(f"stack: 'coef' has {coef.shape[1]} features, expected {n_members} members x "
                         f"{coef.shape[0]} classes")
    if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
        raise ValueError("stack: coefficients must be finite numbers")


def stacker_scores(params: Mapping[str, Any], probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of the stacker for probs [members, rows, classes] in name order."""
    coef = np.asarray(params["coef"], dtype=np.float64)
    intercept = np.asarray(params["intercept"], dtype=np.float64)
    x = features(probs)
    if x.shape[1] != coef.shape[1]:
        raise ValueError(f"stack: the members give {x.shape[1]} features, the coefficients expect {coef.shape[1]}")
    z = x @ coef.T + intercept
    labels = z.argmax(axis=1).astype(np.int64)
    return labels, softmax_inplace(z)
