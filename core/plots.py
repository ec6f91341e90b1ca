"""Figures more than one stage draws: the confusion matrix (run folders and the report) and a safe PNG save.

The project's one plotting convention (report/figures.py too): a bare matplotlib Figure, drawn by the Agg
canvas when saved, so pyplot's global backend and its figure registry are never touched (a library that
switched the backend would change a user's notebook; a pyplot figure left open leaks memory).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay

from core import atomic


def save_figure(fig: Figure, path: Path) -> Path:
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def literal(text: str) -> str:
    """Text from data drawn as written: matplotlib would parse `$x^$` as (broken) mathtext."""
    return str(text).replace("$", r"\$")


def plot_confusion(labels: np.ndarray, preds: np.ndarray, classes: list[str], path: Path, title: str,
                   normalize: str | None = "true") -> Path:
    size = max(4.0, 0.45 * len(classes) + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    ConfusionMatrixDisplay.from_predictions(
        labels, preds, labels=list(range(len(classes))), display_labels=[literal(c) for c in classes],
        normalize=normalize,
        ax=ax, colorbar=False, values_format=".2f" if normalize else "d", cmap="Blues")
    ax.set_title(literal(title))
    return save_figure(fig, path)
