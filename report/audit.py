"""A label audit on paper: the review sheet (thumbnails, worst first), its HTML page, and the vote report's section.

The audit job (jobs/audit.py) hands plain tables: `suspects` (one row per likely label error,
worst first, with `vote:<unit>` columns naming each unit's argmax) and `noise` (per class:
given, estimated_errors, noise_rate, suspects). Nothing here knows how they were found.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core import atomic
from report.gallery import plot_gallery
from report.html import to_html
from report.page import Figure, Page, Section, Table, Text, to_markdown

SHEET = "review.png"
SHEET_LIMIT = 36          # thumbnails on the review sheet; suspects.csv lists every one
TOP_IN_REPORT = 10        # suspects a vote's report repeats


def unit_columns(suspects: pd.DataFrame) -> list[str]:
    return [c for c in suspects.columns if c.startswith("vote:")]


def write_review_sheet(suspects: pd.DataFrame, classes: list[str], out: Path) -> Path | None:
    """Thumbnails of the worst suspects, captioned `given → suggested` and with every unit's vote."""
    shown = suspects.head(SHEET_LIMIT).reset_index(drop=True)
    if shown.empty:
        return None
    index = {name: k for k, name in enumerate(classes)}
    given = shown["given"].map(index).to_numpy()
    suggested = shown["suggested"].map(index).to_numpy()
    votes = {c[5:]: shown[c].map(index).to_numpy() for c in unit_columns(shown)}
    paths = [None if pd.isna(p) else str(p) for p in shown["path"]]
    return plot_gallery(np.arange(len(shown)), paths, given, suggested, votes, classes, out,
                        words=("given", "suggested"))


def _suspect_table(suspects: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    keep = ["rank", "id", "given", "suggested", "self_confidence", "group", *unit_columns(suspects)]
    frame = suspects.loc[:, [c for c in keep if c in suspects.columns]]
    return frame if limit is None else frame.head(limit)


def audit_sections(summary: list[str], noise: pd.DataFrame, suspects: pd.DataFrame, sheet: Path | None,
                   limit: int | None = None, anchor: str = "audit") -> list[Section]:
    """The audit as report sections: noise per class, then the suspects (worst first) with the sheet."""
    estimated = int(noise["estimated_errors"].sum())
    noise_blocks = [Text(" ".join(summary)),
                    Table(noise, f"estimated noise per given class: confident-joint off-diagonal count "
                                 f"({estimated} in all) over the class's rows; `suspects` = rows flagged")]
    shown = _suspect_table(suspects, limit)
    rows = [Text(f"{len(suspects)} suspects, worst (lowest self-confidence) first"
                 + (f"; the top {len(shown)} are listed" if len(shown) < len(suspects) else "")
                 + ". `vote:` columns give each unit's out-of-fold label.")]
    if len(shown):
        rows.append(Table(shown, "", digits=3))
    if sheet is not None:
        rows.append(Figure(sheet, "review sheet: given → suggested label, and each unit's vote (green: agrees "
                                  "with the given label)"))
    return [Section(f"{anchor}-noise", "Label audit: estimated noise per class", noise_blocks),
            Section(f"{anchor}-suspects", "Label audit: likely label errors", rows)]


def write_audit_page(folder: Path, title: str, summary: list[str], noise: pd.DataFrame,
                     suspects: pd.DataFrame, sheet: Path | None) -> Path:
    """audit.html (self-contained) and audit.md beside it, every suspect listed."""
    page = Page(title, summary, audit_sections(summary, noise, suspects, sheet))
    atomic.write_text(folder / "audit.md", to_markdown(page))
    return atomic.write_text(folder / "audit.html", to_html(page, footer="label audit; suspects.csv has every row"))
