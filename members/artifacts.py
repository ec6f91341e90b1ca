"""Pictures and tables a run folder keeps: learning curves, confusion matrix, val probabilities."""
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


def plot_curves(history: list[dict], path: Path, title: str) -> Path:
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train loss")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], marker="o", label="val loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.legend()
    ax_score.plot(epochs, [h["val_f1_macro"] for h in history], marker="o", label="val macro F1")
    ax_score.plot(epochs, [h["val_acc"] for h in history], marker="o", label="val accuracy")
    ax_score.set_xlabel("epoch")
    ax_score.set_ylim(0, 1.02)
    ax_score.legend()
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_confusion(labels: np.ndarray, preds: np.ndarray, classes: list[str], path: Path, title: str,
                   normalize: str | None = "true") -> Path:
    size = max(4.0, 0.45 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        labels, preds, labels=list(range(len(classes))), display_labels=classes, normalize=normalize,
        ax=ax, colorbar=False, values_format=".2f" if normalize else "d", cmap="Blues")
    ax.set_title(title)
    return save_figure(fig, path)


def save_probs(path: Path, ids, labels, probs: np.ndarray, logits: np.ndarray) -> Path:
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=np.asarray(ids, dtype=str), labels=np.asarray(labels, dtype=np.int64),
                     probs=probs.astype(np.float32), logits=logits.astype(np.float32))
    return path
