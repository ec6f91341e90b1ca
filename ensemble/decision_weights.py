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
from ensemble.metrics import macro_f1_many

# Multipliers tried for one class per step: 0.25x .. 4x; 1.0 (no move) is in the grid.
GRID = np.exp(np.linspace(np.log(0.25), np.log(4.0), 17))
N_PASSES = 3


def fit_decision_weights(scores: np.ndarray, y: np.ndarray, n_classes: int | None = None,
                         n_passes: int = N_PASSES) -> list[float]:
    """Per-class weights w (max 1) maximising macro F1 of argmax(w * scores) on these rows."""
    scores = np.asarray(scores, dtype=np.float64)
    n_rows, n_cls = scores.shape
    y = as_labels(y, n_rows)
    n_classes = n_classes or n_cls
    w = np.ones(n_cls)
    current = float(macro_f1_many(y, (scores * w).argmax(axis=1)[None], n_classes)[0])
    for _ in range(n_passes):
        moved = False
        for k in range(n_cls):
            weighted = scores * w
            weighted[:, k] = -np.inf
            other = weighted.argmax(axis=1)
            other_val = weighted[np.arange(n_rows), other]
            cand = w[k] * GRID
            mine = cand[:, None] * scores[None, :, k]
            # np.argmax keeps the lower index on a tie, so k wins a tie only against a later class.
            wins = (mine > other_val[None]) | ((mine == other_val[None]) & (k < other)[None])
            preds = np.where(wins, k, other[None])
            f1 = macro_f1_many(y, preds, n_classes)
            best = int(np.argmax(f1))
            if f1[best] > current + 1e-12:
                w[k], current, moved = cand[best], float(f1[best]), True
        if not moved:
            break
    return [float(v) for v in w / w.max()]


def apply_decision_weights(scores: np.ndarray, weights: list[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels argmax_k w_k s_k, the weighted table renormalised per row)."""
    scores = np.asarray(scores, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (scores.shape[1],):
        raise ValueError(f"decision weights have {w.size} values for {scores.shape[1]} classes")
    weighted = scores * w
    labels = weighted.argmax(axis=1).astype(np.int64)
    total = weighted.sum(axis=1, keepdims=True)
    return labels, weighted / np.where(total > 0, total, 1.0)
