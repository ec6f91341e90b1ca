"""Macro F1 from class counts, vectorised so that selection and bootstrap can score thousands of
prediction sets at once. Tested equal to `sklearn.metrics.f1_score(average="macro", zero_division=0)`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def resolve_labels(y: np.ndarray, pred: np.ndarray, labels: Sequence[int] | None) -> np.ndarray:
    """The labels to average over; like sklearn, default to the sorted union of y and pred."""
    if labels is None:
        return np.union1d(y, pred).astype(np.int64)
    labels = np.asarray(list(labels), dtype=np.int64)
    if np.unique(labels).size != labels.size:
        raise ValueError("labels must be unique")
    return labels


def label_positions(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Position of each value in `labels`; values outside `labels` map to len(labels)."""
    order = np.argsort(labels)
    sorted_labels = labels[order]
    pos = np.searchsorted(sorted_labels, values)
    pos_clipped = np.minimum(pos, len(labels) - 1)
    found = sorted_labels[pos_clipped] == values
    return np.where(found, order[pos_clipped], len(labels))


def f1_from_counts(n_true: np.ndarray, n_pred: np.ndarray, tp: np.ndarray) -> np.ndarray:
    """Macro F1 over the last axis from per-class true, predicted and true-positive counts.

    F1_c = 2 TP / (2 TP + FP + FN) = 2 TP / (n_true + n_pred); a class that is
    neither present nor predicted scores 0 (sklearn's zero_division=0).
    """
    denom = n_true + n_pred
    safe = np.where(denom > 0, denom, 1)
    return np.where(denom > 0, 2.0 * tp / safe, 0.0).mean(axis=-1)


def macro_f1(
    y: np.ndarray,
    pred: np.ndarray,
    labels: Sequence[int] | None = None,
    sample_weight: np.ndarray | None = None,
) -> float:
    """Macro F1 of one prediction vector; equals sklearn's f1_score(average="macro", zero_division=0).

    Parameters
    ----------
    y, pred : ndarray of int, shape (n_rows,)
    labels : sequence of int, optional
    sample_weight : ndarray, shape (n_rows,), optional

    Returns
    -------
    float
    """
    y = np.asarray(y, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    lab = resolve_labels(y, pred, labels)
    k = len(lab)
    yi, pi = label_positions(y, lab), label_positions(pred, lab)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    n_true = np.bincount(yi, weights=w, minlength=k + 1)[:k]
    n_pred = np.bincount(pi, weights=w, minlength=k + 1)[:k]
    hit = yi == pi
    tp = np.bincount(yi[hit], weights=None if w is None else w[hit], minlength=k + 1)[:k]
    return float(f1_from_counts(n_true, n_pred, tp))


def macro_f1_many(y: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """Macro F1 (labels 0..n_classes-1) of each row of preds [sets, rows] against y [rows].

    Parameters
    ----------
    y : ndarray of int, shape (n_rows,)
    preds : ndarray of int, shape (n_sets, n_rows)
    n_classes : int

    Returns
    -------
    ndarray, shape (n_sets,)
    """
    preds = np.asarray(preds, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    for arr in (y, preds):
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            raise ValueError(f"labels must lie in [0, {n_classes})")
    n_sets = preds.shape[0]
    offsets = (np.arange(n_sets) * n_classes)[:, None]
    n_true = np.bincount(y, minlength=n_classes)[:n_classes]
    n_pred = np.bincount((preds + offsets).ravel(), minlength=n_sets * n_classes).reshape(n_sets, n_classes)
    hit = preds == y[None, :]
    tp = np.bincount((preds + offsets)[hit], minlength=n_sets * n_classes).reshape(n_sets, n_classes)
    return f1_from_counts(n_true[None, :], n_pred, tp)
