"""A gallery of the ensemble's validation mistakes: each thumbnail with its true label, the
ensemble's label and every member's vote, so a user sees at a glance which member was right.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from core import atomic
from core.errors import UserError
from core.images import load_rgb

RIGHT, WRONG = "#1b7f3b", "#c0392b"
CELL_INCHES = 1.9
LINE_INCHES = 0.17


def mistakes(y: np.ndarray, pred: np.ndarray, confidence: np.ndarray | None = None) -> np.ndarray:
    """Row indices the ensemble gets wrong, most confident mistakes first (they teach the most)."""
    wrong = np.flatnonzero(np.asarray(pred) != np.asarray(y))
    if confidence is None:
        return wrong
    return wrong[np.argsort(-np.asarray(confidence)[wrong], kind="stable")]


def _thumbnail(path: str | Path | None, pixels: int) -> np.ndarray | None:
    # One unreadable or moved image must not cost the user the whole report.
    if path is None:
        return None
    try:
        img = load_rgb(path)
    except UserError:
        return None
    img.thumbnail((pixels, pixels), Image.Resampling.LANCZOS)
    return np.asarray(img)


def _short(name: str, width: int = 18) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def plot_gallery(rows: Sequence[int], paths: Sequence[str | Path | None], y: np.ndarray, pred: np.ndarray,
                 member_preds: Mapping[str, np.ndarray], classes: Sequence[str], out: Path,
                 columns: int = 6, pixels: int = 160, words: tuple[str, str] = ("true", "ens")) -> Path:
    """Write the thumbnails of `rows` (indices into paths/y/pred) as one PNG grid; `words` name y and pred
    in each caption (a label audit shows `given → suggested`)."""
    if not len(rows):
        raise ValueError("no rows to show")
    columns = min(columns, len(rows))
    n_lines = 1 + len(member_preds)
    cell_h = CELL_INCHES + LINE_INCHES * n_lines
    grid_rows = -(-len(rows) // columns)
    fig = Figure(figsize=(columns * CELL_INCHES, grid_rows * cell_h))
    image_share = CELL_INCHES / cell_h
    for k, row in enumerate(rows):
        r, c = divmod(k, columns)
        left, bottom = c / columns, 1 - (r + 1) / grid_rows
        ax = fig.add_axes((left + 0.01 / columns, bottom + (1 - image_share) / grid_rows,
                           0.98 / columns, 0.97 * image_share / grid_rows))
        ax.set_axis_off()
        thumb = _thumbnail(paths[row], pixels)
        if thumb is None:
            ax.text(0.5, 0.5, "image\nmissing", ha="center", va="center", color="grey", transform=ax.transAxes)
        else:
            ax.imshow(thumb)
        lines = [(f"{words[0]} {classes[y[row]]} → {words[1]} {classes[pred[row]]}", WRONG, "bold")]
        lines += [(f"{_short(name)}: {classes[p[row]]}", RIGHT if p[row] == y[row] else WRONG, "normal")
                  for name, p in member_preds.items()]
        for j, (text, colour, weight) in enumerate(lines):
            y_fig = bottom + (1 - image_share) / grid_rows - (j + 0.9) * LINE_INCHES / (grid_rows * cell_h)
            fig.text(left + 0.5 / columns, y_fig, text, ha="center", va="bottom", fontsize=7.5,
                     color=colour, fontweight=weight)
    with atomic.atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out)
