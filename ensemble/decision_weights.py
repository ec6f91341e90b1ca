"""Macro-F1 decision weights: predict argmax_k w_k p_k instead of argmax_k p_k.

For macro F1 the best decision from calibrated probabilities is not the argmax:
the F1-optimal classifier thresholds weighted class probabilities (Narasimhan
et al., ICML 2015), which favours rare classes more than accuracy would. The
weights are fitted by coordinate ascent on macro F1 of the rows given: one class
at a time, its weight is moved over a multiplicative grid while the others stay
fixed, and a move is kept only if it raises macro F1. Applied on top of any
rule's probability (or vote-share) table.
"""
from __future__ import annotations

import numpy as np

from ensemble._checks import as_labels
from ensemble.metrics import f1_from_counts

# Multipliers tried for one class per step: 0.25x .. 4x; 1.0 (no move) is in the grid.
GRID = np.exp(np.linspace(np.log(0.25), np.log(4.0), 17))
N_PASSES = 3


class _Ascent:
    """Coordinate ascent's bookkeeping: the weighted table, each row's top two classes, and the class
    counts of the current predictions, so that one class's grid is scored on the few rows it can move.

    Moving w_k changes a row's prediction only where k is the top class now (it may lose the row to the
    runner-up) or where k's largest candidate score reaches the best other class (it may win the row).
    Multiplication rounds monotonically, so a row whose largest candidate falls short falls short for
    every candidate. The moved rows' labels are the ones the full argmax gives (same products, same
    tie rule), so every count and every F1 is exactly the full computation's.
    """

    def __init__(self, scores: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        self.scores, self.y, self.n_classes = scores, y, n_classes
        self.rows = np.arange(len(y))
        self.n_true = np.bincount(y, minlength=n_classes)[None]
        self.weighted = scores.copy()  # scores * w for w = 1, exactly

    def refresh(self) -> None:
        """Top two classes per row (ties to the lower index, as argmax) and the counts of the top class."""
        w = self.weighted
        self.top = w.argmax(axis=1)
        self.top_val = w[self.rows, self.top]
        masked = w.copy()
        masked[self.rows, self.top] = -np.inf
        self.second = masked.argmax(axis=1)
        self.second_val = masked[self.rows, self.second]
        self.n_pred = np.bincount(self.top, minlength=self.n_classes)
        self.tp = np.bincount(self.top[self.top == self.y], minlength=self.n_classes)

    def f1(self) -> float:
        return float(f1_from_counts(self.n_true, self.n_pred[None], self.tp[None])[0])

    def scores_of(self, k: int, cand: np.ndarray) -> np.ndarray:
        """Macro F1 [len(cand)] of argmax after setting w_k to each candidate."""
        s_k = self.scores[:, k]
        is_top = self.top == k
        other = np.where(is_top, self.second, self.top)  # argmax over classes other than k
        other_val = np.where(is_top, self.second_val, self.top_val)
        reach = np.maximum(cand.max() * s_k, cand.min() * s_k)
        live = np.flatnonzero(is_top | (reach >= other_val))
        mine = cand[:, None] * s_k[live][None]
        o, o_val = other[live], other_val[live]
        # np.argmax keeps the lower index on a tie, so k wins a tie only against a later class.
        wins = (mine > o_val[None]) | ((mine == o_val[None]) & (k < o)[None])
        new = np.where(wins, k, o[None])
        old = np.broadcast_to(self.top[live], new.shape)
        g_i, j = np.nonzero(new != old)
        c = self.n_classes
        base, new_m, old_m, y_m = g_i * c, new[g_i, j], old[g_i, j], self.y[live[j]]
        size = len(cand) * c
        n_pred = self.n_pred + _signed_counts(base + new_m, base + old_m, size).reshape(len(cand), c)
        hits = _signed_counts((base + new_m)[y_m == new_m], (base + old_m)[y_m == old_m], size)
        return f1_from_counts(self.n_true, n_pred, self.tp + hits.reshape(len(cand), c))

    def move(self, k: int, weight: float) -> None:
        self.weighted[:, k] = self.scores[:, k] * weight
        self.refresh()


def _signed_counts(plus: np.ndarray, minus: np.ndarray, size: int) -> np.ndarray:
    """bincount(plus) - bincount(minus), both of length `size`."""
    return np.bincount(plus, minlength=size) - np.bincount(minus, minlength=size)


def fit_decision_weights(scores: np.ndarray, y: np.ndarray, n_classes: int | None = None,
                         n_passes: int = N_PASSES) -> list[float]:
    """Per-class weights w (max 1) maximising macro F1 of argmax(w * scores) on these rows.

    Parameters
    ----------
    scores : ndarray, shape (n_rows, n_classes)
        A rule's probability (or vote-share) table; non-negative.
    y : ndarray of int, shape (n_rows,)
        True labels.
    n_classes : int, optional
        Classes macro F1 averages over (default: the table's columns).
    n_passes : int
        At most this many sweeps over the classes; a sweep that moves nothing ends the search.

    Returns
    -------
    list of float, length n_classes
        The weights, scaled so that the largest is 1.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n_rows, n_cls = scores.shape
    y = as_labels(y, n_rows)
    n_classes = n_classes or n_cls
    w = np.ones(n_cls)
    if n_cls == 1:
        return [1.0]
    ascent = _Ascent(scores, y, n_classes)
    ascent.refresh()
    current = ascent.f1()
    for _ in range(n_passes):
        moved = False
        for k in range(n_cls):
            cand = w[k] * GRID
            f1 = ascent.scores_of(k, cand)
            best = int(np.argmax(f1))
            if f1[best] > current + 1e-12:
                w[k], current, moved = cand[best], float(f1[best]), True
                ascent.move(k, w[k])
        if not moved:
            break
    return [float(v) for v in w / w.max()]


def apply_decision_weights(scores: np.ndarray, weights: list[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels argmax_k w_k s_k, the weighted table renormalised per row).

    Parameters
    ----------
    scores : ndarray, shape (n_rows, n_classes)
    weights : sequence of float, length n_classes

    Returns
    -------
    labels : ndarray of int, shape (n_rows,)
        Argmax, ties to the lowest class.
    table : ndarray, shape (n_rows, n_classes)
        Weighted and renormalised per row.
    """
    scores = np.asarray(scores, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (scores.shape[1],):
        raise ValueError(f"decision weights have {w.size} values for {scores.shape[1]} classes")
    weighted = scores * w
    labels = weighted.argmax(axis=1).astype(np.int64)
    total = weighted.sum(axis=1, keepdims=True)
    return labels, weighted / np.where(total > 0, total, 1.0)
