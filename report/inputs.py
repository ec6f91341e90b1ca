"""The report's data model: what a caller (the vote job, the report job) hands the builder, and what it
gets back. Every part of the report reads these objects; none reads the caller's own state."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.compare import Comparison
from ensemble.composite import CompositeSpec
from ensemble.recipe import Recipe
from report.page import Section


@dataclass
class VoteOutcome:
    """What one ensemble (a vote, a recipe) predicted on the validation rows."""
    labels: np.ndarray                  # the ensemble's validation predictions
    probs: np.ndarray | None = None     # its probability (or vote-share) table; ranks the gallery


@dataclass
class LabelledTest:
    """Test rows whose true labels are known (the demo's digits); most real test sets have none."""
    labels: np.ndarray
    preds: dict[str, np.ndarray]        # member and ensemble predictions by name


@dataclass
class ReportInputs:
    title: str
    classes: list[str]
    y_val: np.ndarray
    members: dict[str, np.ndarray]      # validation probs [rows, classes] by member, in the user's order
    ensembles: dict[str, VoteOutcome]          # validation votes by name
    primary: str                        # the ensemble the submission (or the user's recipe) uses
    recipe: Recipe
    val_paths: list[str | None]         # validation image files, row-aligned, for the gallery
    run_dirs: dict[str, Path | None] = field(default_factory=dict)
    composite: CompositeSpec | None = None
    test: LabelledTest | None = None
    summary: list[str] = field(default_factory=list)
    seed: int = 0
    n_boot: int = 1000
    n_splits: int = 5
    gallery_limit: int = 30
    compare: Comparison | None = None   # the comparison when the caller already computed it
    groups: np.ndarray | None = None    # the split's group of each validation row (cluster bootstrap)
    member_splits: dict[str, dict] = field(default_factory=dict)  # member -> its registry entry's split
    costs: dict[str, float] = field(default_factory=dict)  # member -> measured inference ms per image
    extra_sections: list[Section] = field(default_factory=list)  # made from a job's own files (e.g. report/audit.py)


@dataclass
class ReportResult:
    folder: Path
    html: Path
    markdown: Path
    metrics: dict
    val_table: pd.DataFrame
    test_table: pd.DataFrame | None
    compare_table: pd.DataFrame | None

    def file(self, name: str) -> Path:
        return self.folder / name
