"""Pictures and tables a run folder keeps: learning curves, confusion matrix, val probabilities."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from core import atomic
from core.plots import plot_confusion, save_figure  # noqa: F401  (plot_confusion: run folders use it)


def plot_curves(history: list[dict], path: Path, title: str) -> Path:
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 3.6))  # core/plots.py: a bare Figure, pyplot's backend left alone
    ax_loss, ax_score = fig.subplots(1, 2)
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


def save_probs(path: Path, ids, labels, probs: np.ndarray, logits: np.ndarray) -> Path:
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=np.asarray(ids, dtype=str), labels=np.asarray(labels, dtype=np.int64),
                     probs=probs.astype(np.float32), logits=logits.astype(np.float32))
    return path
