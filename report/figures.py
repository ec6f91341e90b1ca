"""The report's figures, in one convention: a bare matplotlib Figure (the Agg canvas, pyplot's global backend
left alone), one shared finish for curves, and an atomic PNG write."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MaxNLocator

from core import atomic
from report.plots import plot_heatmap


def save(fig: MplFigure, out: Path) -> Path:
    fig.tight_layout()
    with atomic.atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return out


def _save_curves(fig: MplFigure, axes, out: Path) -> Path:
    """The finish every curve figure of the report shares: whole-number x ticks, a grid, a legend, a safe PNG."""
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, out)


def heatmap(frame: pd.DataFrame, title: str, out: Path) -> Path:
    with atomic.atomic_path(out) as tmp:
        plot_heatmap(frame, title, tmp)
    return out


def plot_learning_curves(histories: dict[str, pd.DataFrame], out: Path) -> Path:
    """Every member's validation macro F1 and losses per epoch, on shared axes."""
    fig = MplFigure(figsize=(11, 3.8))
    ax_score, ax_loss = fig.subplots(1, 2)
    for i, (name, h) in enumerate(histories.items()):
        colour = f"C{i % 10}"
        if "val_f1_macro" in h:
            ax_score.plot(h["epoch"], h["val_f1_macro"], marker="o", color=colour, label=name)
        if "val_loss" in h:
            ax_loss.plot(h["epoch"], h["val_loss"], marker="o", color=colour, label=f"{name} val")
        if "train_loss" in h:
            ax_loss.plot(h["epoch"], h["train_loss"], linestyle="--", color=colour, label=f"{name} train")
    ax_score.set(xlabel="epoch", ylabel="validation macro F1", ylim=(0, 1.02), title="validation macro F1")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss (dashed: train)")
    losses = [h[c] for h in histories.values() for c in ("train_loss", "val_loss") if c in h]
    if losses and all((loss > 0).all() for loss in losses):
        # Early losses can be orders of magnitude above the later ones; a log axis keeps both readable.
        ax_loss.set_yscale("log")
    return _save_curves(fig, (ax_score, ax_loss), out)


def plot_selection_curve(curve: pd.DataFrame, out: Path) -> Path:
    fig = MplFigure(figsize=(6.5, 3.6))
    ax = fig.subplots()
    ax.plot(curve["size"], curve["f1_in_sample"], label="in-sample (fitted and scored on the same rows)")
    ax.plot(curve["size"], curve["f1_crossfit"], label="cross-fitted (honest)")
    best = int(curve["f1_in_sample"].to_numpy().argmax())
    ax.axvline(curve["size"].iloc[best], color="grey", linestyle=":", label="use_best cut")
    ax.set(xlabel="ensemble size (greedy selection steps)", ylabel="macro F1", title="Caruana selection curve")
    return _save_curves(fig, (ax,), out)


def plot_hillclimb_path(path: list[dict], out: Path) -> Path:
    """Hill climbing's path: in-sample macro F1 after each step, each step labelled with its member and weight."""
    fig = MplFigure(figsize=(6.5, 3.6))
    ax = fig.subplots()
    steps = list(range(1, len(path) + 1))
    ax.plot(steps, [s["score"] for s in path], marker="o", label="in-sample macro F1 after the step")
    for step, s in zip(steps, path):
        colour = "C3" if s["weight"] < 0 else "black"  # a subtracted member in red
        ax.annotate(f"{s['member']} {s['weight']:+.2f}", (step, s["score"]), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=6, color=colour, rotation=30)
    ax.set(xlabel="hill-climbing step", ylabel="macro F1", title="Hill climbing path (weights may be negative)")
    return _save_curves(fig, (ax,), out)


def plot_frontier(table: pd.DataFrame, out: Path) -> Path:
    """Honest macro F1 against inference cost: the greedy path, its frontier, the best member and the full ensemble."""
    fig = MplFigure(figsize=(6.5, 3.6))
    ax = fig.subplots()
    path = table[table["mark"] != "best single member"].sort_values("cost_ms")
    ax.plot(path["cost_ms"], path["f1_macro_honest"], marker="o", color="C0", label="greedy path (gain per ms)")
    front = table[table["on_frontier"]]
    ax.step(front["cost_ms"], front["f1_macro_honest"], where="post", color="C2", alpha=0.6, label="frontier")
    for mark, style in (("best single member", dict(marker="*", s=160, color="C1")),
                        ("full ensemble", dict(marker="s", s=70, color="C3"))):
        row = table[table["mark"] == mark]
        ax.scatter(row["cost_ms"], row["f1_macro_honest"], zorder=3, label=mark, **style)
    for _, r in path.iterrows():
        ax.annotate(f"+{r['added']}", (r["cost_ms"], r["f1_macro_honest"]), textcoords="offset points",
                    xytext=(4, -10), fontsize=6)
    ax.set(xlabel="inference cost (ms per image, measured)", ylabel="honest macro F1",
           title="Cost-accuracy frontier")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, out)
