"""Member x member heatmaps for the report (disagreement, error correlation)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


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
