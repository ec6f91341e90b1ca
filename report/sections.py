"""The report's sections, in page order, as a registry: a section is a name and a function of the shared
`Context` that returns a `report.page.Section` (and may add its figures to `context.metrics`). Adding a
section is one `register_section` call; the page, report.md and metrics.json follow."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core import atomic
from core.plots import plot_confusion
from ensemble import budget, diversity, rules
from ensemble.compare import Comparison
from report.figures import heatmap, plot_frontier, plot_hillclimb_path, plot_learning_curves, plot_selection_curve
from report.gallery import mistakes, plot_gallery
from report.inputs import ReportInputs
from report.page import CodePanels, Figure, FigureRow, Heading, Section, Table, Text
from report.runs import history_of, student_lines


def safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)


@dataclass
class Context:
    """Everything a section may read, computed once by the builder."""
    stage: Path                           # the folder being written (figures go here)
    inputs: ReportInputs
    y: np.ndarray
    preds: dict[str, np.ndarray]          # validation labels of every member and vote
    val_table: pd.DataFrame
    test_table: pd.DataFrame | None
    compared: pd.DataFrame | None         # the honest table with the submitted row
    why_not: str                          # why there is no honest table
    comparison: Comparison | None
    submitted_note: str
    students: dict[str, dict]
    reports: dict[str, str]
    metrics: dict = field(default_factory=dict)  # sections add their own entries for metrics.json


@dataclass(frozen=True)
class ReportSection:
    name: str
    build: Callable[[Context], Section]


SECTIONS: list[ReportSection] = []


def register_section(name: str, before: str | None = None) -> Callable:
    """Decorator: add a section to the page, at the end or before the section named `before`."""
    def add(build: Callable[[Context], Section]) -> Callable[[Context], Section]:
        if any(s.name == name for s in SECTIONS):
            raise ValueError(f"report section {name!r} is already registered")
        at = next((i for i, s in enumerate(SECTIONS) if s.name == before), len(SECTIONS))
        SECTIONS.insert(at, ReportSection(name, build))
        return build
    return add


@register_section("scores")
def scores_section(ctx: Context) -> Section:
    blocks = [Table(ctx.val_table, "Validation rows. Macro F1 is the metric; accuracy is shown beside it.")]
    blocks += [Text(line) for line in student_lines(ctx.students, ctx.val_table)]
    if ctx.test_table is not None:
        blocks += [Heading("Test rows of the submission"),
                   Table(ctx.test_table, "True test labels are known for the demo data only.")]
    return Section("scores", "Scores", blocks)


def _compare_text(comparison: Comparison) -> str:
    k = comparison.n_splits
    text = (f"Each method is fitted on {k - 1} of {k} folds of the validation rows and scored on the fold it never "
            f"saw (`f1_macro_honest`); `f1_macro_val` fits and scores on the same rows, for contrast. `gain` is the "
            f"macro-F1 difference to the best member chosen inside the cross-fit, with a 95% paired bootstrap "
            f"interval ({comparison.n_boot} resamples); `verdict` says what the interval shows: `better` (it lies "
            f"above zero), `worse` (below zero) or `no evidence` (it includes zero). "
            f"Resampling unit: {comparison.scheme}.")
    if comparison.groups is not None and not comparison.scheme.startswith("groups"):
        text += " Every group holds one row, so the cluster bootstrap is the row bootstrap here."
    return text


def _curve_figures(ctx: Context) -> list[Figure]:
    comparison, figures = ctx.comparison, []
    if comparison.curve is not None:
        figures.append(Figure(plot_selection_curve(comparison.curve, ctx.stage / "selection_curve.png"),
                              "Caruana selection: macro F1 against ensemble size (greedy steps), fitted and scored "
                              "on the same rows (in-sample) and cross-fitted; `caruana+best` stops at the in-sample "
                              "curve's first maximum"))
    climbed = comparison.recipes.get("hillclimb")
    if climbed is not None and climbed.blend is not None:
        path = climbed.blend["path"]
        ctx.metrics["hillclimb_path"] = path
        figures.append(Figure(plot_hillclimb_path(path, ctx.stage / "hillclimb_path.png"),
                              f"Hill climbing on all rows ({climbed.blend['space']} space): each step adds the "
                              f"member and signed weight that raise macro F1 most; it stops when nothing does"))
    return figures


@register_section("compare")
def compare_section(ctx: Context) -> Section:
    title = "Members versus ensembles (honest)"
    if ctx.compared is None or ctx.comparison is None:
        return Section("compare", title, [Text(ctx.why_not)])
    caption = f"The `submitted` row {ctx.submitted_note.removeprefix('the submitted row ')}"
    blocks: list = [Text(_compare_text(ctx.comparison)), Table(ctx.compared, caption)]
    figures = _curve_figures(ctx)
    if figures:
        blocks.append(FigureRow(figures))
    return Section("compare", title, blocks)


def frontier_rule(method: str) -> str:
    """The rule that scores each subset: the submitted recipe's, where it is a flat rule of the table."""
    try:
        base, _ = rules.parse(method)
    except KeyError:
        return "soft"
    return "soft" if base.composite else method


@register_section("frontier")
def frontier_section(ctx: Context) -> Section:
    title, inputs = "Cost and accuracy: the best ensemble per inference budget", ctx.inputs
    names = list(inputs.members)
    costs = {n: inputs.costs.get(n, float("nan")) for n in names}
    unmeasured = [n for n in names if not (costs[n] > 0)]
    if len(names) < 2 or unmeasured or len(names) > budget.MAX_MEMBERS:
        why = (f"no measured inference cost for {', '.join(f'`{n}`' for n in unmeasured)} (imported, or cached "
               f"before costs were measured)" if unmeasured else f"{len(names)} members")
        ctx.metrics["frontier"] = None
        return Section("frontier", title, [Text(f"No frontier: {why}.")])
    rule = frontier_rule(inputs.recipe.method)
    try:
        table = budget.frontier(inputs.members, ctx.y, costs, rule, seed=inputs.seed, n_splits=inputs.n_splits,
                                groups=inputs.groups)
    except ValueError as err:  # too few rows or groups to cross-fit: no honest frontier to draw
        ctx.metrics["frontier"] = None
        return Section("frontier", title, [Text(f"No frontier: {err}.")])
    ctx.metrics["frontier"] = {"rule": rule, "costs_ms": costs, "points": table.to_dict("records")}
    text = (f"Each member's cost is measured when it predicts (ms per image: "
            f"{', '.join(f'`{n}` {c:.3g}' for n, c in costs.items())}). Members are added greedily by honest "
            f"macro-F1 gain per millisecond; each subset is scored by `{rule}`, cross-fitted. "
            f"`vote --rule best --budget-ms N` picks the best honest ensemble among the subsets that fit N.")
    return Section("frontier", title, [Text(text), Table(table, "the greedy path; `on_frontier`: no cheaper point "
                                                                "scores as well"),
                                       Figure(plot_frontier(table, ctx.stage / "frontier.png"),
                                              "honest macro F1 against inference cost")])


@register_section("diversity")
def diversity_section(ctx: Context) -> Section:
    title, inputs, stage = "How differently the members err", ctx.inputs, ctx.stage
    if len(inputs.members) < 2:
        ctx.metrics["diversity"] = None
        return Section("diversity", title, [Text("One member only: nothing to compare.")])
    disagree = diversity.disagreement(inputs.members)
    correlation = diversity.error_correlation(inputs.members, ctx.y)
    oracle = diversity.oracle_rate(inputs.members, ctx.y)
    ctx.metrics["diversity"] = {"disagreement": disagree.to_dict(), "error_correlation": correlation.to_dict(),
                                "oracle_rate": oracle}
    return Section("diversity", title, [
        Text(f"Members that disagree, and whose errors do not coincide, are what voting can exploit. "
             f"At least one member is right on {oracle:.1%} of the validation rows: the ceiling for any vote."),
        FigureRow([Figure(heatmap(disagree, "disagreement", stage / "disagreement.png"),
                          "share of validation rows on which two members predict different labels"),
                   Figure(heatmap(correlation, "error correlation", stage / "error_correlation.png"),
                          "correlation of the members' 0/1 errors (low is good for voting)")])])


@register_section("confusion")
def confusion_section(ctx: Context) -> Section:
    classes = ctx.inputs.classes
    figures = [Figure(plot_confusion(ctx.y, pred, classes, ctx.stage / f"confusion_{safe_name(name)}.png",
                                     f"{name} (row-normalised)"), f"{name}: validation, row-normalised")
               for name, pred in ctx.preds.items()]
    return Section("confusion", "Confusion matrices (validation)", [FigureRow(figures)])


@register_section("learning-curves")
def curves_section(ctx: Context) -> Section:
    inputs, stage = ctx.inputs, ctx.stage
    histories = {name: history_of(inputs.run_dirs.get(name)) for name in inputs.members}
    found = {name: h for name, h in histories.items() if h is not None}
    blocks: list = []
    if found:
        blocks.append(Figure(plot_learning_curves(found, stage / "learning_curves.png"),
                             "validation macro F1 and loss per epoch, from each member's history.csv"))
    missing = [name for name in histories if name not in found]
    for name in list(missing):
        # Without a readable history, the run's own curves.png is the next best picture.
        picture = inputs.run_dirs.get(name) and inputs.run_dirs[name] / "curves.png"
        if picture and picture.is_file():
            copy = atomic.write_bytes(stage / f"curves_{safe_name(name)}.png", picture.read_bytes())
            blocks.append(Figure(copy, f"{name}: curves.png from its run folder"))
            missing.remove(name)
    if missing:
        blocks.append(Text("No readable history.csv in the run folder of: " + ", ".join(f"`{m}`" for m in missing)))
    return Section("learning-curves", "Learning curves", blocks)


@register_section("gallery")
def gallery_section(ctx: Context) -> Section:
    inputs, y = ctx.inputs, ctx.y
    primary = inputs.ensembles[inputs.primary]
    wrong = mistakes(y, primary.labels, None if primary.probs is None else primary.probs.max(1))
    shown = wrong[: inputs.gallery_limit]
    if len(shown):
        votes = {name: ctx.preds[name] for name in inputs.members}
        plot_gallery(shown, inputs.val_paths, y, primary.labels, votes, inputs.classes, ctx.stage / "gallery.png")
        blocks = [Text(f"{len(wrong)} of {len(y)} validation rows are misclassified by `{inputs.primary}`; "
                       f"the {len(shown)} most confident mistakes are shown. Member votes in green were right."),
                  Figure(ctx.stage / "gallery.png", f"misclassified validation images ({inputs.primary})")]
    elif len(wrong):
        blocks = [Text(f"{len(wrong)} of {len(y)} validation rows are misclassified (gallery switched off).")]
    else:
        blocks = [Text(f"`{inputs.primary}` classifies every validation row correctly.")]
    ctx.metrics["gallery"] = {"mistakes": int(len(wrong)), "shown": int(len(shown))}
    return Section("gallery", "Misclassified validation images", blocks)


@register_section("classification-reports")
def reports_section(ctx: Context) -> Section:
    return Section("classification-reports", "Classification reports (validation)", [CodePanels(ctx.reports)])
