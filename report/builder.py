"""The ensemble report users read to decide which members to keep: page assembly.

One builder serves `scripts.report` and `scripts.vote`. It computes the numbers once (report/statistics.py),
lets every registered section (report/sections.py) draw its part, and writes, into one folder that is
replaced whole and never left half-written (report/folder.py):
  report.html (self-contained) and report.md, classification_reports.txt,
  confusion_*.png, learning_curves.png, disagreement.png, error_correlation.png,
  gallery.png, selection_curve.png and hillclimb_path.png (with two or more members), recipe.yaml,
  metrics.json, metrics.csv, compare.csv and scores_*.csv.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from core import atomic, files
from ensemble.recipe import Recipe
from report.folder import MARKER, check_report_target, is_report_folder, staged_folder, sweep_stale_stages
from report.html import to_html
from report.inputs import LabelledTest, ReportInputs, ReportResult, VoteOutcome
from report.page import Page, to_markdown
from report.runs import split_line, student_of
from report.sections import SECTIONS, Context, safe_name
from report.statistics import (
    COMPARE_COLUMNS,
    classification_reports,
    compare_table,
    comparison_of,
    score,
    score_table,
)

__all__ = [
    "COMPARE_COLUMNS", "MARKER", "LabelledTest", "ReportInputs", "ReportResult", "VoteOutcome", "build_report",
    "check_report_target", "comparison_of", "compare_table", "is_report_folder", "print_table", "safe_name",
    "score", "score_table", "split_line", "staged_folder", "sweep_stale_stages",
]  # fmt: skip


def _records(frame: pd.DataFrame | None) -> list[dict] | None:
    """Table rows as JSON-safe dicts: NaN and NA become null."""
    if frame is None:
        return None

    def clean(value):
        if value is None or value is pd.NA:
            return None
        if isinstance(value, (np.bool_, bool)):
            return bool(value)
        if isinstance(value, (np.integer,)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            return None if math.isnan(value) else float(value)
        return value

    return [{k: clean(v) for k, v in row.items()} for row in frame.astype(object).to_dict("records")]


def _write_tables(stage: Path, metrics: dict, ctx: Context, recipe: Recipe) -> None:
    """The files for machines: metrics.json and metrics.csv, plus the plain tables and the recipe."""
    val_table, test_table = ctx.val_table, ctx.test_table
    atomic.write_text(stage / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    tables = [val_table.assign(split="val")] + ([test_table.assign(split="test")] if test_table is not None else [])
    long = pd.concat(tables, ignore_index=True)
    atomic.write_text(stage / "metrics.csv", long[["split", *val_table.columns]].to_csv(index=False))
    atomic.write_text(stage / "scores_val.csv", val_table.to_csv(index=False))
    if test_table is not None:
        atomic.write_text(stage / "scores_test.csv", test_table.to_csv(index=False))
    if ctx.compared is not None:
        atomic.write_text(stage / "compare.csv", ctx.compared.to_csv(index=False))
    atomic.write_text(stage / "classification_reports.txt",
                      "\n".join(f"== {name} ==\n{text}" for name, text in ctx.reports.items()))
    atomic.write_text(stage / "recipe.yaml", files.dump_yaml(recipe.to_dict(), sort_keys=False))


def _context(inputs: ReportInputs) -> Context:
    """The numbers every section reads, computed once, before anything is written."""
    n_classes = len(inputs.classes)
    y = np.asarray(inputs.y_val)
    preds = {name: probs.argmax(1) for name, probs in inputs.members.items()}
    preds.update({name: vote.labels for name, vote in inputs.ensembles.items()})
    kinds = {name: ("ensemble" if name in inputs.ensembles else "member") for name in preds}
    students = {name: found for name in inputs.members if (found := student_of(inputs.run_dirs.get(name)))}
    kinds.update(dict.fromkeys(students, "student"))  # a member distilled from an ensemble (scripts.distill)
    val_table = score_table(y, preds, n_classes, kinds, inputs.composite)
    test_table = (score_table(inputs.test.labels, inputs.test.preds, n_classes, kinds, inputs.composite)
                  if inputs.test is not None else None)
    comparison, why_not = comparison_of(inputs)
    compared, why_not, submitted_note = compare_table(inputs, comparison, why_not)
    return Context(Path(), inputs, y, preds, val_table, test_table, compared, why_not, comparison, submitted_note,
                   students, classification_reports(inputs, preds))


def _metrics(ctx: Context, created: str) -> dict:
    inputs, comparison = ctx.inputs, ctx.comparison
    return {
        "title": inputs.title, "created": created, "classes": list(inputs.classes), "n_val_rows": int(len(ctx.y)),
        "primary": inputs.primary, "recipe": inputs.recipe.to_dict(),
        "composite": None if inputs.composite is None else inputs.composite.to_dict(),
        "scores": {"val": _records(ctx.val_table), "test": _records(ctx.test_table)},
        "compare": _records(ctx.compared), "submitted_note": ctx.submitted_note,
        "resampling": None if comparison is None else comparison.scheme,
        "selection_curve": None if comparison is None or comparison.curve is None else _records(comparison.curve),
        "students": ctx.students, **ctx.metrics,
    }


def build_report(inputs: ReportInputs, out_dir: Path) -> ReportResult:
    """Write the whole report folder; see the module docstring for its files."""
    out_dir = Path(out_dir)
    if inputs.primary not in inputs.ensembles:
        raise ValueError(f"primary ensemble {inputs.primary!r} is not among {list(inputs.ensembles)}")
    ctx = _context(inputs)
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with staged_folder(out_dir) as stage:
        ctx.stage = stage
        # The pictures come before the long text reports, so the top of the page tells the story.
        sections = [section.build(ctx) for section in SECTIONS]
        # Sections a job made from its own files (a label audit's) go before the long text reports.
        last = next((i for i, s in enumerate(SECTIONS) if s.name == "classification-reports"), len(sections))
        sections[last:last] = inputs.extra_sections
        metrics = _metrics(ctx, created)
        _write_tables(stage, metrics, ctx, inputs.recipe)
        validation = split_line(inputs.member_splits)
        page = Page(inputs.title, [*inputs.summary, f"{len(ctx.y)} validation rows, {len(inputs.classes)} classes; "
                                   f"members: {', '.join(inputs.members)}", *([validation] if validation else [])],
                    sections)
        atomic.write_text(stage / "report.md", to_markdown(page))
        atomic.write_text(stage / "report.html", to_html(page, footer=f"ensemble-vote report, {created}; "
                                                                      f"report.md beside it has the same content"))
    return ReportResult(out_dir, out_dir / "report.html", out_dir / "report.md", metrics, ctx.val_table,
                        ctx.test_table, ctx.compared)


def print_table(title: str, table: pd.DataFrame | None) -> None:
    """The scripts' console tables: 4 decimals, '-' where a method has no value."""
    if table is None:
        return
    print(f"\n{title}")
    # na_rep covers NaN only: a text column's None (a member's verdict) is shown as '-' too.
    text = [c for c in table.columns if table[c].dtype == object]
    shown = table.assign(**{c: table[c].where(table[c].notna(), "-") for c in text})
    print(shown.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4f}"))
