"""Figures more than one stage draws: the confusion matrix (run folders and the report) and a safe PNG save."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from core import atomic  # noqa: E402


def save_figure(fig, path: Path) -> Path:
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def literal(text: str) -> str:
    """Text from data drawn as written: matplotlib would parse `$x^$` as (broken) mathtext."""
    return str(text).replace("$", r"\$")


def plot_confusion(labels: np.ndarray, preds: np.ndarray, classes: list[str], path: Path, title: str,
                   normalize: str | None = "true") -> Path:
    size = max(4.0, 0.45 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        labels, preds, labels=list(range(len(classes))), display_labels=[literal(c) for c in classes],
        normalize=normalize,
        ax=ax, colorbar=False, values_format=".2f" if normalize else "d", cmap="Blues")
    ax.set_title(literal(title))
    return save_figure(fig, path)
