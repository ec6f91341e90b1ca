"""How differently the members err: pairwise disagreement, error correlation, oracle rate.

Inputs map member name -> either probabilities [rows, classes] (their argmax
is used) or predicted labels [rows]. Tables are indexed by name, sorted.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ensemble._checks import as_labels


def _predictions(members: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    if not members:
        raise ValueError("no members given")
    names = sorted(members)
    preds = []
    for name in names:
        arr = np.asarray(members[name])
        if arr.ndim == 2:
            arr = arr.argmax(axis=1)
        elif arr.ndim != 1:
            raise ValueError(f"member {name!r}: expected probs [rows, classes] or labels [rows]; got {arr.shape}")
        preds.append(as_labels(arr, name=f"member {name!r}"))
    if len({len(p) for p in preds}) != 1:
        raise ValueError("members have different numbers of rows")
    return names, np.stack(preds)


def disagreement(members: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Share of rows on which each pair of members predicts different labels."""
    names, preds = _predictions(members)
    table = (preds[:, None, :] != preds[None, :, :]).mean(axis=2)
    return pd.DataFrame(table, index=names, columns=names)


def error_correlation(members: Mapping[str, np.ndarray], y: np.ndarray) -> pd.DataFrame:
    """Pearson correlation of the members' 0/1 error indicators.

    A member whose errors are constant (always right or always wrong) has no
    variance to share: its correlation with every other member is reported
    as 0 and with itself as 1, instead of NaN with a divide warning.
    """
    names, preds = _predictions(members)
    y = as_labels(y, preds.shape[1])
    errors = (preds != y[None, :]).astype(np.float64)
    centred = errors - errors.mean(axis=1, keepdims=True)
    cov = centred @ centred.T
    std = np.sqrt(np.diag(cov))
    varies = std > 0
    denom = np.outer(np.where(varies, std, 1.0), np.where(varies, std, 1.0))
    corr = np.where(np.outer(varies, varies), cov / denom, 0.0)
    np.fill_diagonal(corr, 1.0)
    return pd.DataFrame(np.clip(corr, -1.0, 1.0), index=names, columns=names)


def oracle_rate(members: Mapping[str, np.ndarray], y: np.ndarray) -> float:
    """Share of rows on which at least one member is right: the ceiling for any selection rule."""
    _, preds = _predictions(members)
    y = as_labels(y, preds.shape[1])
    return float((preds == y[None, :]).any(axis=0).mean())


def member_accuracy(members: Mapping[str, np.ndarray], y: np.ndarray) -> pd.Series:
    """Accuracy of each member, indexed by name."""
    names, preds = _predictions(members)
    y = as_labels(y, preds.shape[1])
    return pd.Series((preds == y[None, :]).mean(axis=1), index=names, name="accuracy")
