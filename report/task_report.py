"""The report of a task vote: per-task scores of every member covering the task, the honest table
of each task and of the composed classes, and the confusion of the task that loses the most macro F1.

It writes the same kind of folder as report/builder.py (report.html, report.md, metrics.json,
recipe.yaml, CSV tables, PNGs), through the same staging, so a rebuild replaces it whole.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from core import atomic, files
from core.plots import plot_confusion
from ensemble.composite import CompositeSpec
from ensemble.metrics import macro_f1_many
from ensemble.task_compare import TaskComparison
from ensemble.task_vote import TaskRecipe, task_distributions, task_labels
from report.builder import ReportResult, safe_name, staged_folder
from report.html import to_html
from report.page import Figure, Page, Section, Table, Text, to_markdown


@dataclass
class TaskReportInputs:
    title: str
    spec: CompositeSpec
    y: np.ndarray                            # flat validation labels
    val: dict[str, np.ndarray]               # unit -> validation probs (flat, or its task's)
    task_of: dict[str, str]                  # task members -> their task
    recipe: TaskRecipe
    labels: np.ndarray                       # the submitted recipe's flat validation labels
    table: np.ndarray                        # its flat table (product of the per-task tables)
    comparison: TaskComparison | None
    task_classes: dict[str, list[str]] = field(default_factory=dict)  # from the task members' entries
    summary: list[str] = field(default_factory=list)


def _score(y: np.ndarray, pred: np.ndarray, n: int) -> tuple[float, float]:
    return float(macro_f1_many(y, np.asarray(pred)[None], n)[0]), float(np.mean(pred == y))


def member_task_scores(inputs: TaskReportInputs) -> pd.DataFrame:
    """One row per (task, member covering it) and the submitted vote per task, then the composed classes."""
    spec, sizes = inputs.spec, dict(inputs.spec.tasks)
    truth = task_labels(spec, inputs.y)
    dists = task_distributions(spec, inputs.val, inputs.task_of)
    voted = dict(zip(spec.names, spec.decode(inputs.labels).T))
    rows = []
    for task in spec.names:
        for member, probs in dists[task].items():
            kind = "task member" if member in inputs.task_of else "full member (marginal)"
            rows.append((task, member, kind, *_score(truth[task], probs.argmax(1), sizes[task])))
        rows.append((task, f"vote:{inputs.recipe.rule}", "ensemble", *_score(truth[task], voted[task], sizes[task])))
    for member, probs in inputs.val.items():
        if member not in inputs.task_of:
            rows.append(("composed", member, "full member", *_score(inputs.y, probs.argmax(1), spec.n_classes)))
    rows.append(("composed", f"vote:{inputs.recipe.rule}", "ensemble", *_score(inputs.y, inputs.labels, spec.n_classes)))
    return pd.DataFrame(rows, columns=["task", "method", "kind", "f1_macro", "acc"])


def worst_task(inputs: TaskReportInputs, scores: pd.DataFrame) -> str:
    """The task whose vote has the lowest macro F1: the one that loses the composed classes the most."""
    voted = scores[(scores["kind"] == "ensemble") & (scores["task"] != "composed")]
    return str(voted.loc[voted["f1_macro"].idxmin(), "task"])


def _class_names(inputs: TaskReportInputs, task: str) -> list[str]:
    size = dict(inputs.spec.tasks)[task]
    return list(inputs.task_classes.get(task) or [f"{task}={i}" for i in range(size)])


def _confusion_section(stage, inputs: TaskReportInputs, worst: str) -> Section:
    truth = task_labels(inputs.spec, inputs.y)
    voted = dict(zip(inputs.spec.names, inputs.spec.decode(inputs.labels).T))
    blocks = []
    for task in [worst] + [t for t in inputs.spec.names if t != worst]:
        names = _class_names(inputs, task)
        counts = pd.crosstab(pd.Categorical(truth[task], range(len(names))),
                             pd.Categorical(voted[task], range(len(names))), dropna=False)
        frame = pd.DataFrame(counts.to_numpy(), columns=[f"pred {n}" for n in names]).assign(true=names)
        frame = frame[["true", *[f"pred {n}" for n in names]]]
        label = " — **loses the most macro F1**" if task == worst else ""
        path = plot_confusion(truth[task], voted[task], names, stage / f"confusion_task_{safe_name(task)}.png",
                              f"task {task}: vote {inputs.recipe.rule}" + (" (loses the most macro F1)"
                                                                            if task == worst else ""))
        blocks += [Text(f"Task `{task}`{label}"), Table(frame, digits=0), Figure(path, f"confusion of task {task}")]
    return Section("task-confusion", "Confusion per task (the submitted vote)", blocks)


def build_task_report(inputs: TaskReportInputs, out_dir: Path) -> ReportResult:
    out_dir = Path(out_dir)
    scores = member_task_scores(inputs)
    worst = worst_task(inputs, scores)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    comparison = inputs.comparison
    with staged_folder(out_dir) as stage:
        sections = [Section("task-scores", "Scores per task (validation; members in-sample, fitted votes in-sample)",
                            [Table(scores)])]
        if comparison is not None:
            sections.append(Section("task-compare", "Honest comparison: the composed classes",
                                    [Text(f"Cross-fitted per task, composed; gain vs the best full member; "
                                          f"resampling unit: {comparison.scheme}."), Table(comparison.composed)]))
            atomic.write_text(stage / "compare.csv", comparison.composed.to_csv(index=False))
            for task in inputs.spec.names:
                per = comparison.per_task[task]
                if per is None:
                    continue
                sections.append(Section(f"task-compare-{safe_name(task)}", f"Honest comparison: task {task}",
                                        [Table(per.table)]))
                atomic.write_text(stage / f"compare_{safe_name(task)}.csv", per.table.to_csv(index=False))
        sections.append(_confusion_section(stage, inputs, worst))
        metrics = {"title": inputs.title, "created": created, "composite": inputs.spec.to_dict(),
                   "task_members": inputs.task_of, "worst_task": worst, "n_val_rows": len(inputs.y),
                   "scores": json.loads(scores.to_json(orient="records")),
                   "compare": None if comparison is None else json.loads(comparison.composed.to_json(orient="records")),
                   "resampling": None if comparison is None else comparison.scheme,
                   "recipe": inputs.recipe.to_dict()}
        atomic.write_text(stage / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        atomic.write_text(stage / "scores_val.csv", scores.to_csv(index=False))
        atomic.write_text(stage / "recipe.yaml", files.dump_yaml(inputs.recipe.to_dict(), sort_keys=False))
        described = (f"{len(inputs.y)} validation rows; tasks {', '.join(f'{n} ({s})' for n, s in inputs.spec.tasks)}; "
                     f"the task that loses the most macro F1: {worst}")
        page = Page(inputs.title, [*inputs.summary, described], sections)
        atomic.write_text(stage / "report.md", to_markdown(page))
        atomic.write_text(stage / "report.html", to_html(page, footer=f"ensemble-vote task report, {created}"))
    return ReportResult(out_dir, out_dir / "report.html", out_dir / "report.md", metrics, scores, None,
                        None if comparison is None else comparison.composed)


__all__ = ["TaskReportInputs", "build_task_report"]
