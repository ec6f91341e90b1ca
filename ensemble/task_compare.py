"""The honest comparison of a task vote: every task on its own, and the composed flat classes.

Each task is an ordinary flat problem over the members that cover it, so `ensemble.compare`
scores it as it scores any vote (each member, the cross-fitted best member, the fixed rules, the
fitted rules cross-fitted on grouped folds). A composed method takes the same method in every
task and re-encodes the per-task labels: a row's composed label is then predicted, task by task,
by fits that never saw that row, so the composed score is honest too. The gain baseline is the
best FULL member (chosen inside the folds), the member a task vote has to beat.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ensemble._checks import stack_members
from ensemble.compare import COLUMNS, Comparison, compare, pick_best
from ensemble.composite import CompositeSpec
from ensemble.honest import (
    best_member_method,
    crossfit_predictions,
    paired_bootstrap_gains,
    resampling_scheme,
)
from ensemble.metrics import macro_f1_many
from ensemble.recipe import Recipe, apply_stacked
from ensemble.task_vote import FIXED, TaskRecipe, task_distributions, task_labels
from ensemble.voting import hard_vote, soft_vote

PREFIX = "tasks:"  # composed methods are named tasks:<method>, e.g. tasks:soft, tasks:stack


@dataclass
class TaskComparison:
    spec: CompositeSpec
    per_task: dict[str, Comparison | None]   # None: one member covers the task, nothing to compare
    single: dict[str, str]                   # task -> its only member, where there is one
    composed: pd.DataFrame                   # COLUMNS, one row per member and composed method
    honest: dict[str, np.ndarray]            # composed cross-fitted labels by method
    scheme: str
    n_rows: int
    single_labels: dict[str, np.ndarray]     # task -> its lone member's labels
    task_of: dict[str, str]                  # task members -> their task

    def task_honest(self, task: str, method: str) -> np.ndarray:
        """The task's cross-fitted labels of `method` (a lone member's own labels where it is alone)."""
        comparison = self.per_task[task]
        if comparison is None:
            return self.single_labels[task]
        return comparison.honest[method]

    def task_f1(self, method: str, y: np.ndarray) -> dict[str, float]:
        """Each task's honest macro F1 under `method` (a name without the tasks: prefix)."""
        truth = task_labels(self.spec, y)
        sizes = dict(self.spec.tasks)
        return {t: float(macro_f1_many(truth[t], self.task_honest(t, method)[None], sizes[t])[0])
                for t in self.spec.names}

    def recipe(self, rule: str) -> TaskRecipe:
        """`rule` fitted on all rows in every task (`best`: each task's best honest method)."""
        tasks = {}
        for task in self.spec.names:
            comparison = self.per_task[task]
            if comparison is None:
                tasks[task] = Recipe("soft", {self.single[task]: 1.0})
            elif rule == "best":
                tasks[task] = pick_best(comparison)
            else:
                tasks[task] = comparison.recipes[rule]
        return TaskRecipe(rule, self.spec.to_dict(), dict(self.task_of), tasks)


def compare_tasks(spec: CompositeSpec, probs_by_name: Mapping[str, np.ndarray], task_of: Mapping[str, str],
                  y: np.ndarray, groups: np.ndarray | None = None, seed: int = 0, n_splits: int = 5,
                  n_boot: int = 1000, extra: Sequence[str] = ()) -> TaskComparison:
    """Per-task comparisons and the composed table (see the module docstring)."""
    y = np.asarray(y, dtype=np.int64)
    dists = task_distributions(spec, probs_by_name, task_of)
    truth = task_labels(spec, y)
    sizes = dict(spec.tasks)
    per_task: dict[str, Comparison | None] = {}
    single: dict[str, str] = {}
    single_labels: dict[str, np.ndarray] = {}
    for task in spec.names:
        if len(dists[task]) == 1:
            (member, probs), = dists[task].items()
            per_task[task], single[task], single_labels[task] = None, member, probs.argmax(1)
        else:
            per_task[task] = compare(dists[task], truth[task], sizes[task], seed=seed, n_splits=n_splits,
                                     n_boot=n_boot, groups=groups, extra=extra)
    methods = _shared_methods(per_task)
    honest, in_sample = {}, {}
    for method in methods:
        honest[PREFIX + method] = _compose(spec, {t: (single_labels[t] if per_task[t] is None else
                                                      per_task[t].honest[method]) for t in spec.names})
        in_sample[PREFIX + method] = _compose(spec, {t: (single_labels[t] if per_task[t] is None else
                                                         _in_sample(per_task[t], method, dists[t])) for t in spec.names})
    full = {m: p for m, p in probs_by_name.items() if m not in task_of}
    baseline = _baseline(full, y, seed, n_splits, groups, honest)
    rows = _composed_rows(full, y, spec.n_classes, honest, in_sample, baseline, seed, n_boot, groups)
    result = TaskComparison(spec, per_task, single, pd.DataFrame(rows, columns=COLUMNS), honest,
                            resampling_scheme(groups, len(y)), len(y), single_labels, dict(task_of))
    result.composed["verdict"] = result.composed["verdict"].astype(object)
    return result


def _shared_methods(per_task: dict[str, Comparison | None]) -> list[str]:
    """The ensemble methods every compared task has (the same list for all tasks, in table order)."""
    tables = [c.table for c in per_task.values() if c is not None]
    if not tables:
        return list(FIXED)
    names = [m for m in tables[0].loc[tables[0]["kind"] != "member", "method"] if all(m in set(t["method"])
                                                                                      for t in tables)]
    return names


def _in_sample(comparison: Comparison, method: str, dists: Mapping[str, np.ndarray]) -> np.ndarray:
    names, probs = stack_members(dists)
    return apply_stacked(comparison.recipes[method], probs, names)[0]


def _compose(spec: CompositeSpec, labels: Mapping[str, np.ndarray]) -> np.ndarray:
    return spec.encode(np.stack([labels[t] for t in spec.names], axis=1))


def _baseline(full: Mapping[str, np.ndarray], y: np.ndarray, seed: int, n_splits: int, groups: np.ndarray | None,
              honest: Mapping[str, np.ndarray]) -> np.ndarray:
    """The best full member chosen inside the folds; with no full member, the per-task best members composed."""
    if not full:
        return honest[PREFIX + "best_member"]
    names, probs = stack_members(full)
    if len(names) == 1:
        return probs[0].argmax(1)
    return crossfit_predictions(best_member_method, probs, y, names, n_splits, seed, groups)


def _composed_rows(full: Mapping[str, np.ndarray], y: np.ndarray, n_classes: int, honest: dict[str, np.ndarray],
                   in_sample: dict[str, np.ndarray], baseline: np.ndarray, seed: int, n_boot: int,
                   groups: np.ndarray | None) -> list[dict]:
    """Members, the best full member, the full members' own flat votes, and every composed method."""
    preds: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}
    for name, probs in full.items():
        labels = np.asarray(probs).argmax(1)
        preds[f"member:{name}"] = ("member", labels, labels)
    preds["best_member"] = ("baseline", baseline, baseline)
    if len(full) > 1:  # what the full members reach without any task member, for contrast
        _, probs = stack_members(full)
        preds["full:hard"] = ("ensemble", hard_vote(probs), hard_vote(probs))
        preds["full:soft"] = ("ensemble", soft_vote(probs)[0], soft_vote(probs)[0])
    for method, labels in honest.items():
        preds[method] = ("ensemble", labels, in_sample[method])
    ensembles = {k: v[1] for k, v in preds.items() if v[0] == "ensemble"}
    boot = paired_bootstrap_gains(y, ensembles, baseline, n_boot, seed, range(n_classes), groups=groups)
    order = list(preds)
    f1 = macro_f1_many(y, np.stack([preds[k][1] for k in order]), n_classes)
    f1_in = macro_f1_many(y, np.stack([preds[k][2] for k in order]), n_classes)
    rows = []
    for i, key in enumerate(order):
        kind, labels, _ = preds[key]
        row = {"method": key, "kind": kind, "f1_macro_honest": float(f1[i]), "acc_honest": float(np.mean(labels == y)),
               "f1_macro_val": float(f1_in[i]), "gain": np.nan, "ci_low": np.nan, "ci_high": np.nan,
               "verdict": None}
        if key in boot:
            b = boot[key]
            row.update(gain=b["gain"], ci_low=b["low"], ci_high=b["high"], verdict=b["verdict"])
        rows.append(row)
    return rows
