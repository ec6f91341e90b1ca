"""How differently the members err: pairwise disagreement, error correlation, oracle rate.

Inputs map member name -> either probabilities [rows, classes] (their argmax
is used) or predicted labels [rows]. Tables are indexed by name, sorted.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

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


def plot_heatmap(df: pd.DataFrame, title: str, path: str | Path) -> Path:
    """Write a member x member table as a PNG heatmap with the values printed in the cells."""
    # A bare Figure renders with the Agg canvas and leaves pyplot's global
    # backend alone, so this works headless and inside other people's sessions.
    from matplotlib.figure import Figure

    path = Path(path)
    values = df.to_numpy(dtype=float)
    n_rows, n_cols = values.shape
    fig = Figure(figsize=(1.5 + 0.6 * n_cols, 1.0 + 0.6 * n_rows))
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="viridis")
    ax.set_xticks(range(n_cols), [str(c) for c in df.columns], rotation=45, ha="right")
    ax.set_yticks(range(n_rows), [str(i) for i in df.index])
    for i in range(n_rows):
        for j in range(n_cols):
            ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", color="w", fontsize=8)
    ax.set_title(title)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, format="png")
    return path
