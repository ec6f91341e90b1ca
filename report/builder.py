"""The ensemble report users read to decide which members to keep.

One builder serves `scripts.report` and `scripts.vote`. It writes, into one folder
that is replaced whole (never left half-written):
  report.html (self-contained) and report.md, classification_reports.txt,
  confusion_*.png, learning_curves.png, disagreement.png, error_correlation.png,
  gallery.png, selection_curve.png (with two or more members), recipe.yaml, metrics.json,
  metrics.csv and scores_*.csv.
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import accuracy_score, classification_report, f1_score

from core import atomic, files, leftovers
from ensemble import diversity
from ensemble.compare import Comparison, compare
from ensemble.composite import CompositeSpec
from report.gallery import mistakes, plot_gallery
from ensemble.honest import paired_bootstrap_gain
from ensemble.recipe import Recipe
from report.html import to_html
from report.page import CodePanels, Figure, FigureRow, Heading, Page, Section, Table, Text, to_markdown
from core.plots import plot_confusion
from report.plots import plot_heatmap

COMPARE_COLUMNS = ["method", "kind", "f1_macro_honest", "acc_honest", "f1_macro_val",
                   "gain", "ci_low", "ci_high", "excludes_zero"]


def score(y: np.ndarray, pred: np.ndarray, n_classes: int) -> dict:
    return {"f1_macro": float(f1_score(y, pred, average="macro", labels=range(n_classes), zero_division=0)),
            "acc": float(accuracy_score(y, pred))}


def score_table(y: np.ndarray, preds: dict[str, np.ndarray], n_classes: int, kinds: dict[str, str],
                composite: CompositeSpec | None = None) -> pd.DataFrame:
    """One row per member/vote: macro F1 and accuracy, and per task when labels are composite."""
    rows = []
    for name, pred in preds.items():
        row = {"name": name, "kind": kinds.get(name, "member"), **score(y, pred, n_classes)}
        if composite is not None:
            for (task, size), yt, pt in zip(composite.tasks, composite.decode(y).T, composite.decode(pred).T):
                task_score = score(yt, pt, size)
                row[f"{task}_f1_macro"], row[f"{task}_acc"] = task_score["f1_macro"], task_score["acc"]
        rows.append(row)
    return pd.DataFrame(rows)


def split_line(member_splits: dict[str, dict]) -> str | None:
    """The header line: the split and duplicate setting the members share (or how they differ)."""
    if not member_splits:
        return None

    def key(split: dict) -> str:
        # Entries from before duplicates were grouped record no setting; their split grouped nothing.
        dup = split.get("duplicates", "off (not recorded)")
        merged = f", {split['merged_groups']} group(s) merged" if split.get("merged_groups") else ""
        return f"split `{split.get('name')}` ({str(split.get('sha256', ''))[:12]}), duplicates {dup}{merged}"

    kinds: dict[str, list[str]] = {}
    for name, split in member_splits.items():
        kinds.setdefault(key(split), []).append(name)
    if len(kinds) == 1:
        return f"Validation: {next(iter(kinds))}, shared by every member"
    return "Validation differs between members: " + "; ".join(f"{k} for {', '.join(v)}" for k, v in kinds.items())


def safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)


@dataclass
class Vote:
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
    ensembles: dict[str, Vote]          # validation votes by name
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


# --- the folder is replaced whole -------------------------------------------------------------

# Written into every report folder: only a folder that carries it is ever replaced, so `--name ../runs`
# or `--report my-thesis` can never swap a user's or the project's folder for a report.
MARKER = ".ensemble-report"


def is_report_folder(folder: Path) -> bool:
    """True for a report folder this project made: it holds MARKER."""
    return (Path(folder) / MARKER).is_file()


def check_report_target(out_dir: Path) -> Path:
    """Refuse a report folder that exists but is not a report: a file, or any folder without MARKER
    (whether it may be replaced at all, --overwrite, is for the command to check: atomic.check_replaceable)."""
    return atomic.check_folder_target(out_dir, MARKER, "report folder")


def sweep_stale_stages(out_dir: Path) -> list[Path]:
    """Remove the staging (and set-aside) folders of builds of `out_dir` that were killed midway."""
    removed = []
    for path in leftovers.stale_siblings(out_dir, (".tmp", ".old")):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def staged_folder(out_dir: Path) -> Iterator[Path]:
    """Build in a hidden sibling folder and swap it in only when everything was written.

    A failure leaves the previous report as it was; stale files of an earlier report
    (e.g. the confusion PNG of a member no longer voted) do not survive a rebuild; the
    staging folders of builds that were killed are swept; a folder that is not a report
    is never replaced.
    """
    out_dir = check_report_target(Path(out_dir))
    sweep_stale_stages(out_dir)
    with atomic.atomic_folder(out_dir) as stage:  # a failure says what to do and leaves the old report
        (stage / MARKER).write_text("This folder is an ensemble report; a rebuild replaces it whole.\n",
                                    encoding="utf-8")
        yield stage
        check_report_target(out_dir)  # again: something may have appeared there while the report was built


# --- the pieces --------------------------------------------------------------------------------

def classification_reports(inputs: ReportInputs, preds: dict[str, np.ndarray]) -> dict[str, str]:
    """scikit-learn's text report for every member and ensemble, and per task for composite labels."""
    labels = list(range(len(inputs.classes)))
    reports = {name: classification_report(inputs.y_val, pred, labels=labels, target_names=inputs.classes,
                                           digits=4, zero_division=0)
               for name, pred in preds.items()}
    if inputs.composite is not None:
        spec = inputs.composite
        y_tasks = spec.decode(inputs.y_val)
        for name, pred in preds.items():
            p_tasks = spec.decode(pred)
            for t, (task, size) in enumerate(spec.tasks):
                reports[f"{name} · {task}"] = classification_report(
                    y_tasks[:, t], p_tasks[:, t], labels=list(range(size)),
                    target_names=[f"{task}={v}" for v in range(size)], digits=4, zero_division=0)
    return reports


def comparison_of(inputs: ReportInputs) -> tuple[Comparison | None, str]:
    """The caller's comparison, or one computed here; (None, why) when it cannot run."""
    if len(inputs.members) < 2:
        return None, "One member only: there is no ensemble to compare with."
    if inputs.compare is not None:
        return inputs.compare, ""
    try:
        return compare(inputs.members, inputs.y_val, len(inputs.classes), inputs.composite, inputs.seed,
                       n_splits=inputs.n_splits, n_boot=inputs.n_boot, groups=inputs.groups), ""
    except ValueError as err:
        # Too few rows for the folds, say: the rest of the report is still worth having.
        return None, f"The honest comparison could not run on these rows: {err}"


def compare_table(inputs: ReportInputs, comparison: Comparison | None = None,
                  why: str = "") -> tuple[pd.DataFrame | None, str]:
    """The comparison's honest table plus a row for the submitted recipe; (None, why) when it cannot run.

    The submitted row's gain is measured against the comparison's own cross-fitted best member,
    on the same resampling scheme (groups when known), so nothing is cross-fitted twice."""
    if comparison is None and not why:
        comparison, why = comparison_of(inputs)
    if comparison is None:
        return None, why
    n_classes = len(inputs.classes)
    table, best = comparison.table, comparison.honest["best_member"]
    chosen = inputs.ensembles[inputs.primary].labels
    boot = paired_bootstrap_gain(inputs.y_val, chosen, best, comparison.n_boot, inputs.seed, range(n_classes),
                                 groups=comparison.groups)
    in_sample = score(inputs.y_val, chosen, n_classes)
    # Equal weights and no temperatures fit nothing on these rows, so the in-sample score is already honest;
    # any other recipe may have been tuned on them, and we cannot tell.
    fixed = not inputs.recipe.temperatures and len(set(inputs.recipe.members.values())) == 1
    submitted = {"method": f"submitted ({inputs.primary})", "kind": "submitted",
                 "f1_macro_honest": in_sample["f1_macro"] if fixed else np.nan,
                 "acc_honest": in_sample["acc"] if fixed else np.nan,
                 "f1_macro_val": in_sample["f1_macro"],
                 "gain": boot["gain"], "ci_low": boot["low"], "ci_high": boot["high"],
                 "excludes_zero": boot["excludes_zero"]}
    table = pd.concat([table, pd.DataFrame([submitted])], ignore_index=True)[COMPARE_COLUMNS]
    return table, ""


def history_of(run_dir: Path | None) -> pd.DataFrame | None:
    if run_dir is None or not (run_dir / "history.csv").is_file():
        return None
    try:
        history = pd.read_csv(run_dir / "history.csv")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None
    return history if "epoch" in history.columns and len(history) else None


def student_of(run_dir: Path | None) -> dict | None:
    """A distilled student's `distilled_from.yaml` (written by scripts.distill in its run folder), else None."""
    path = run_dir / "distilled_from.yaml" if run_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        found = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return None
    return found if isinstance(found, dict) and found.get("members") else None


def _student_lines(students: dict[str, dict], val_table: pd.DataFrame) -> list[str]:
    """Each student beside its teacher: the recipe it learned from and both validation scores."""
    f1 = val_table.set_index("name")["f1_macro"]
    lines = []
    for name, origin in students.items():
        teacher = origin.get("teacher_val_f1_macro")
        versus = f" (its teacher: {teacher:.4f} when it was distilled)" if isinstance(teacher, (int, float)) else ""
        lines.append(f"`{name}` is a **student** distilled from recipe `{origin.get('recipe')}` (rule "
                     f"`{origin.get('rule', '?')}` over {', '.join(f'`{m}`' for m in origin['members'])}; targets "
                     f"{origin.get('targets', 'in-sample')}): validation macro F1 {f1.get(name, float('nan')):.4f}"
                     f"{versus}, at one member's inference cost.")
    return lines


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


def _save_curves(fig: MplFigure, axes, out: Path) -> Path:
    """The finish every curve figure of the report shares: whole-number x ticks, a grid, a legend, a safe PNG."""
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic.atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return out


def heatmap(frame: pd.DataFrame, title: str, out: Path) -> Path:
    with atomic.atomic_path(out) as tmp:
        plot_heatmap(frame, title, tmp)
    return out


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


# --- the sections ------------------------------------------------------------------------------

def _scores_section(val_table: pd.DataFrame, test_table: pd.DataFrame | None,
                    students: dict[str, dict] | None = None) -> Section:
    blocks = [Table(val_table, "Validation rows. Macro F1 is the metric; accuracy is shown beside it.")]
    blocks += [Text(line) for line in _student_lines(students or {}, val_table)]
    if test_table is not None:
        blocks += [Heading("Test rows of the submission"),
                   Table(test_table, "True test labels are known for the demo data only.")]
    return Section("scores", "Scores", blocks)


def _compare_section(table: pd.DataFrame | None, why: str, comparison: Comparison | None, stage: Path) -> Section:
    if table is None or comparison is None:
        return Section("compare", "Members versus ensembles (honest)", [Text(why)])
    k = comparison.n_splits
    text = (f"Each method is fitted on {k - 1} of {k} folds of the validation rows and scored on the fold it never "
            f"saw (`f1_macro_honest`); `f1_macro_val` fits and scores on the same rows, for contrast. `gain` is the "
            f"macro-F1 difference to the best member chosen inside the cross-fit, with a 95% paired bootstrap "
            f"interval ({comparison.n_boot} resamples): trust a gain whose interval excludes zero. "
            f"Resampling unit: {comparison.scheme}.")
    if comparison.groups is not None and not comparison.scheme.startswith("groups"):
        text += " Every group holds one row, so the cluster bootstrap is the row bootstrap here."
    caption = ("The `submitted` row scores the recipe as given on all validation rows. Unless its weights are all "
               "equal and it has no temperatures, they may have been fitted on these rows: then its gain is "
               "optimistic and its honest score is left blank; read the cross-fitted rows instead.")
    blocks: list = [Text(text), Table(table, caption)]
    if comparison.curve is not None:
        blocks.append(Figure(plot_selection_curve(comparison.curve, stage / "selection_curve.png"),
                             "Caruana selection: macro F1 against ensemble size (greedy steps), fitted and scored on "
                             "the same rows (in-sample) and cross-fitted; `caruana+best` stops at the in-sample "
                             "curve's first maximum"))
    return Section("compare", "Members versus ensembles (honest)", blocks)


def plot_selection_curve(curve: pd.DataFrame, out: Path) -> Path:
    fig = MplFigure(figsize=(6.5, 3.6))
    ax = fig.subplots()
    ax.plot(curve["size"], curve["f1_in_sample"], label="in-sample (fitted and scored on the same rows)")
    ax.plot(curve["size"], curve["f1_crossfit"], label="cross-fitted (honest)")
    best = int(curve["f1_in_sample"].to_numpy().argmax())
    ax.axvline(curve["size"].iloc[best], color="grey", linestyle=":", label="use_best cut")
    ax.set(xlabel="ensemble size (greedy selection steps)", ylabel="macro F1", title="Caruana selection curve")
    return _save_curves(fig, (ax,), out)


def _reports_section(reports: dict[str, str]) -> Section:
    return Section("classification-reports", "Classification reports (validation)", [CodePanels(reports)])


def _confusion_section(stage: Path, y: np.ndarray, preds: dict[str, np.ndarray], classes: list[str]) -> Section:
    figures = [Figure(plot_confusion(y, pred, classes, stage / f"confusion_{safe_name(name)}.png",
                                     f"{name} (row-normalised)"), f"{name}: validation, row-normalised")
               for name, pred in preds.items()]
    return Section("confusion", "Confusion matrices (validation)", [FigureRow(figures)])


def _curves_section(stage: Path, inputs: ReportInputs) -> Section:
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


def _diversity_section(stage: Path, inputs: ReportInputs, y: np.ndarray) -> tuple[Section, dict | None]:
    title = "How differently the members err"
    if len(inputs.members) < 2:
        return Section("diversity", title, [Text("One member only: nothing to compare.")]), None
    disagree = diversity.disagreement(inputs.members)
    correlation = diversity.error_correlation(inputs.members, y)
    oracle = diversity.oracle_rate(inputs.members, y)
    section = Section("diversity", title, [
        Text(f"Members that disagree, and whose errors do not coincide, are what voting can exploit. "
             f"At least one member is right on {oracle:.1%} of the validation rows: the ceiling for any vote."),
        FigureRow([Figure(heatmap(disagree, "disagreement", stage / "disagreement.png"),
                          "share of validation rows on which two members predict different labels"),
                   Figure(heatmap(correlation, "error correlation", stage / "error_correlation.png"),
                          "correlation of the members' 0/1 errors (low is good for voting)")])])
    metrics = {"disagreement": disagree.to_dict(), "error_correlation": correlation.to_dict(), "oracle_rate": oracle}
    return section, metrics


def _gallery_section(stage: Path, inputs: ReportInputs, y: np.ndarray,
                     preds: dict[str, np.ndarray]) -> tuple[Section, dict]:
    primary = inputs.ensembles[inputs.primary]
    wrong = mistakes(y, primary.labels, None if primary.probs is None else primary.probs.max(1))
    shown = wrong[: inputs.gallery_limit]
    if len(shown):
        votes = {name: preds[name] for name in inputs.members}
        plot_gallery(shown, inputs.val_paths, y, primary.labels, votes, inputs.classes, stage / "gallery.png")
        blocks = [Text(f"{len(wrong)} of {len(y)} validation rows are misclassified by `{inputs.primary}`; "
                       f"the {len(shown)} most confident mistakes are shown. Member votes in green were right."),
                  Figure(stage / "gallery.png", f"misclassified validation images ({inputs.primary})")]
    elif len(wrong):
        blocks = [Text(f"{len(wrong)} of {len(y)} validation rows are misclassified (gallery switched off).")]
    else:
        blocks = [Text(f"`{inputs.primary}` classifies every validation row correctly.")]
    return (Section("gallery", "Misclassified validation images", blocks),
            {"mistakes": int(len(wrong)), "shown": int(len(shown))})


def _write_tables(stage: Path, metrics: dict, val_table: pd.DataFrame, test_table: pd.DataFrame | None,
                  compared: pd.DataFrame | None, reports: dict[str, str], recipe: Recipe) -> None:
    """The files for machines: metrics.json and metrics.csv, plus the plain tables and the recipe."""
    atomic.write_text(stage / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    tables = [val_table.assign(split="val")] + ([test_table.assign(split="test")] if test_table is not None else [])
    long = pd.concat(tables, ignore_index=True)
    atomic.write_text(stage / "metrics.csv", long[["split", *val_table.columns]].to_csv(index=False))
    atomic.write_text(stage / "scores_val.csv", val_table.to_csv(index=False))
    if test_table is not None:
        atomic.write_text(stage / "scores_test.csv", test_table.to_csv(index=False))
    if compared is not None:
        atomic.write_text(stage / "compare.csv", compared.to_csv(index=False))
    atomic.write_text(stage / "classification_reports.txt",
                      "\n".join(f"== {name} ==\n{text}" for name, text in reports.items()))
    atomic.write_text(stage / "recipe.yaml", files.dump_yaml(recipe.to_dict(), sort_keys=False))


def build_report(inputs: ReportInputs, out_dir: Path) -> ReportResult:
    """Write the whole report folder; see the module docstring for its files."""
    out_dir = Path(out_dir)
    if inputs.primary not in inputs.ensembles:
        raise ValueError(f"primary ensemble {inputs.primary!r} is not among {list(inputs.ensembles)}")
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
    compared, why_not = compare_table(inputs, comparison, why_not)
    reports = classification_reports(inputs, preds)
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    with staged_folder(out_dir) as stage:
        diversity_section, diversity_metrics = _diversity_section(stage, inputs, y)
        gallery_section, gallery_metrics = _gallery_section(stage, inputs, y, preds)
        # The pictures come before the long text reports, so the top of the page tells the story.
        sections = [_scores_section(val_table, test_table, students), _compare_section(compared, why_not, comparison, stage),
                    diversity_section, _confusion_section(stage, y, preds, inputs.classes),
                    _curves_section(stage, inputs), gallery_section, _reports_section(reports)]
        metrics = {
            "title": inputs.title, "created": created, "classes": list(inputs.classes), "n_val_rows": int(len(y)),
            "primary": inputs.primary, "recipe": inputs.recipe.to_dict(),
            "composite": None if inputs.composite is None else inputs.composite.to_dict(),
            "scores": {"val": _records(val_table), "test": _records(test_table)},
            "compare": _records(compared),
            "resampling": None if comparison is None else comparison.scheme,
            "selection_curve": None if comparison is None or comparison.curve is None else _records(comparison.curve),
            "diversity": diversity_metrics, "gallery": gallery_metrics, "students": students,
        }
        _write_tables(stage, metrics, val_table, test_table, compared, reports, inputs.recipe)
        validation = split_line(inputs.member_splits)
        page = Page(inputs.title, [*inputs.summary, f"{len(y)} validation rows, {n_classes} classes; members: "
                                   f"{', '.join(inputs.members)}", *([validation] if validation else [])], sections)
        atomic.write_text(stage / "report.md", to_markdown(page))
        atomic.write_text(stage / "report.html", to_html(page, footer=f"ensemble-vote report, {created}; "
                                                                      f"report.md beside it has the same content"))
    return ReportResult(out_dir, out_dir / "report.html", out_dir / "report.md", metrics, val_table, test_table,
                        compared)


def print_table(title: str, table: pd.DataFrame | None) -> None:
    """The scripts' console tables: 4 decimals, '-' where a method has no value."""
    if table is None:
        return
    print(f"\n{title}")
    print(table.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4f}"))
