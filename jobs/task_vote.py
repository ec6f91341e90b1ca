"""The vote job when task members take part: full members and task members, voted task by task.

A task member (trained with `data.task`) predicts one task of the composite label; the vote
reads each full member through its marginal over every task (see ensemble/task_vote.py). Units
are the same as in any vote (single members, fold groups); the members covering one task must
have the same classes, and every member must share the composite layout and the split file.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from core import files
from core.config import load_config
from core.entry import RegistryEntry
from core.errors import UserError, one_line
from core.registry import Registry
from core.settings import Settings
from ensemble.composite import CompositeSpec
from ensemble.recipe import RECIPE_MAX_BYTES, Recipe, read_recipe
from ensemble.task_compare import PREFIX, TaskComparison, compare_tasks
from ensemble.task_vote import (
    FIXED,
    TaskRecipe,
    apply_tasks,
    fixed_recipe,
    is_task_recipe,
)
from imagedata.sources import DatasetListing
from jobs import outputs
from jobs.fold_groups import Unit, fold_members, unit_inputs
from predict.run import predict_members
from report import submission
from report.builder import ReportResult
from report.task_report import TaskReportInputs, build_task_report


def load_recipe(path: str) -> Recipe | TaskRecipe:
    """A saved recipe file: a task recipe (per-task recipes) or a flat one."""
    data = files.read_yaml(path, "recipe", RECIPE_MAX_BYTES)  # bounded, aliases refused (core/files.py)
    if not is_task_recipe(data):
        return read_recipe(path)
    try:
        return TaskRecipe.from_dict(data)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise UserError(one_line(f"recipe {path} cannot be read: {err}")) from None


def task_of_units(units: list[Unit], entries: dict[str, RegistryEntry]) -> dict[str, str]:
    """Unit -> its task, for the units made of task members (a fold group must be all one task)."""
    out = {}
    for unit in units:
        tasks = {entries[m].task.name if entries[m].task else None for m in unit.members}
        if len(tasks) > 1:
            raise UserError(f"fold group '{unit.name}' mixes members of different tasks ({sorted(map(str, tasks))})")
        task = tasks.pop()
        if task is not None:
            out[unit.name] = task
    return out


def uses_tasks(entries: dict[str, RegistryEntry], recipe) -> bool:
    return isinstance(recipe, TaskRecipe) or any(entry.task is not None for entry in entries.values())


def composite_of_units(units: list[Unit], entries: dict[str, RegistryEntry]) -> CompositeSpec:
    """The one composite layout every member declares (a full member's `composite`, a task member's `task.of`);
    a member of another layout, or on another split file, is refused in one line."""
    first, layout = None, None
    # Full members first: a task member that differs is then the one named at fault.
    for member in sorted(fold_members(units), key=lambda m: entries[m].task is not None):
        entry = entries[member]
        declared = entry.task.of if entry.task else entry.composite
        if declared is None:
            raise UserError(f"member '{member}' has no composite label: it cannot vote with task members")
        spec = CompositeSpec.from_dict(declared)
        if layout is None:
            first, layout = entry, spec
        elif spec != layout:
            raise UserError(f"member '{member}' belongs to composite {list(spec.tasks)} but '{first.name}' to "
                            f"{list(layout.tasks)}: task members vote only with members of the same composite label")
        a, b = first.split, entry.split
        if (a.name, a.sha256) != (b.name, b.sha256):
            raise UserError(f"member '{member}' was validated on split '{b.name}' but '{first.name}' on "
                            f"'{a.name}' (or the file changed in between): train task members on the full "
                            f"members' split file")
    return layout


def parse_task_weights(items: list[str], names: list[str], task_of: dict[str, str],
                       spec: CompositeSpec) -> dict[str, dict[str, float]]:
    """`member=w` (every task the member covers) or `member:task=w`; named, never positional."""
    weights: dict[str, dict[str, float]] = {task: {} for task in spec.names}
    given: set[tuple[str, str]] = set()
    for item in items or []:
        key, sep, value = item.partition("=")
        name, _, task = key.partition(":")
        if not sep:
            raise UserError(f"weight '{item}' must look like member=weight or member:task=weight")
        if name not in names:
            raise UserError(f"weight given for '{name}', which is not among the voting members ({', '.join(names)})")
        covered = [task_of[name]] if name in task_of else spec.names
        if task and task not in covered:
            raise UserError(f"weight '{item}': member '{name}' does not cover task '{task}' (it covers "
                            f"{', '.join(covered)})")
        try:
            number = float(value)
        except ValueError:
            raise UserError(f"weight for '{key}' is '{value}', not a number") from None
        if not math.isfinite(number) or number < 0:
            raise UserError(f"weight for '{key}' is '{value}', not a finite non-negative number")
        for t in [task] if task else covered:
            if (name, t) in given:
                raise UserError(f"weight for '{name}' in task '{t}' is given twice in --weights")
            given.add((name, t))
            weights[t][name] = number
    return weights


def aligned_inputs(units: list[Unit], entries: dict[str, dict], task_of: dict[str, str], settings: Settings,
                   predictions, spec: CompositeSpec):
    """Validation and test probabilities of every unit on shared rows, the flat labels, and the rows' groups."""
    parts: dict[str | None, list[Unit]] = {}
    for unit in units:
        parts.setdefault(task_of.get(unit.name), []).append(unit)
    gathered = {key: unit_inputs(part, entries, predictions, settings) for key, part in parts.items()}
    ref_key = None if None in gathered else next(iter(gathered))
    ref, groups = gathered[ref_key]
    index = pd.Index(np.asarray(ref.val_ids).astype(str))
    val, test, labels = {}, {}, {}
    for key, (inputs, _) in gathered.items():
        order = pd.Index(np.asarray(inputs.val_ids).astype(str)).get_indexer(index)
        if len(inputs.val_ids) != len(index) or (order < 0).any():
            raise UserError(f"'{inputs.names[0]}' is validated on {len(inputs.val_ids)} rows but '{ref.names[0]}' on "
                            f"{len(index)} other rows: vote task members with members of the same split and fold")
        labels[key] = np.asarray(inputs.val_labels)[order]
        for i, name in enumerate(inputs.names):
            val[name] = inputs.val_probs[i][order]
            if inputs.test_probs is None or (ref.test_ids is not None and
                                             not np.array_equal(inputs.test_ids, ref.test_ids)):
                raise UserError(f"'{name}' and '{ref.names[0]}' have different (or no) test rows in their predictions")
            test[name] = inputs.test_probs[i]
    y = labels[None] if None in labels else spec.encode(np.stack([labels[t] for t in spec.names], axis=1))
    truth = dict(zip(spec.names, spec.decode(y).T))
    for key, task_y in labels.items():
        if key is not None and not np.array_equal(task_y, truth[key]):
            raise UserError(f"the '{key}' task members disagree with the full members on the labels of shared rows")
    return ref, val, test, y, groups


def choose_task_recipe(rule: str, spec: CompositeSpec, task_of: dict[str, str], names: list[str],
                       weights: dict[str, dict[str, float]], comparison: TaskComparison | None) -> TaskRecipe:
    if rule in FIXED:
        try:
            recipe = fixed_recipe(rule, spec.to_dict(), task_of, names, weights)
        except ValueError as err:
            raise UserError(str(err)) from None
        recipe.note = "per-task weights as given on the command line"
        return recipe
    if comparison is None:
        raise UserError(f"rule '{rule}' is fitted per task and scored by cross-fitting, which needs two members")
    known = {m.removeprefix(PREFIX) for m in comparison.honest} | {"best"}
    if rule not in known:
        raise UserError(f"rule '{rule}' is not available for a task vote; choose one of {', '.join(sorted(known))}")
    recipe = comparison.recipe(rule)
    row = comparison.composed.set_index("method").loc[PREFIX + rule] if rule != "best" else None
    recipe.note = (f"{rule} in every task, fitted on all {comparison.n_rows} rows" +
                   (f"; composed honest macro-F1 {row['f1_macro_honest']:.4f}" if row is not None else
                    "; each task takes its best honest method (chosen on the same rows it is scored on)"))
    return recipe


def task_vote(req, settings: Settings, registry: Registry, units: list[Unit], entries: dict[str, dict],
              recipe: TaskRecipe | None, out: Path, report_dir: Path) -> tuple[Path, TaskRecipe, ReportResult]:
    """The vote job's task path: same request, same outputs; returns (recipe path, recipe, report)."""
    if req.wandb != "disabled":
        raise UserError("--wandb is not yet logged for votes with task members; vote without it")
    task_of = task_of_units(units, entries)
    spec = composite_of_units(units, entries)  # before any prediction work
    names = [u.name for u in units]
    uncovered = [t for t in spec.names if not any(task_of.get(n, t) == t for n in names)]
    if uncovered:
        raise UserError(f"task '{uncovered[0]}' has no member that covers it: add a full member or a "
                        f"'{uncovered[0]}' task member")
    weights = parse_task_weights(req.weights, names, task_of, spec)
    members = fold_members(units)
    listing = DatasetListing()
    predictions = predict_members(members, registry, settings, tta=req.tta, entries=entries, listing=listing)
    ref, val, test, y, groups = aligned_inputs(units, entries, task_of, settings, predictions, spec)
    comparison = None
    if len(names) > 1:
        try:
            comparison = compare_tasks(spec, val, task_of, y, groups, extra=[req.rule])
        except ValueError as err:  # too few rows or groups to cross-fit: fixed rules still vote
            if req.rule not in FIXED:
                raise UserError(f"rule '{req.rule}' cannot be cross-fitted on these rows: {err}") from err
    if recipe is None:
        recipe = choose_task_recipe(req.rule, spec, task_of, names, weights, comparison)
    group_units = {u.name: u.members for u in units if u.group and u.name in recipe.member_names}
    if group_units:
        recipe = replace(recipe, groups=group_units)
    val_labels, val_table = apply_tasks(recipe, val)
    test_labels = apply_tasks(recipe, test)[0]
    config = load_config(registry.resolve(entries[members[0]].config))
    dataset = listing.load(config.data, settings.data_root)
    frame = submission.build(ref.test_ids, test_labels, dataset.test_info)
    recipe_path = outputs.recipe_path_of(out)
    report_inputs = TaskReportInputs(
        title=f"Ensemble report: {req.name} (task vote)", spec=spec, y=y, val=val, task_of=task_of,
        recipe=recipe, labels=val_labels, table=val_table, comparison=comparison,
        task_classes={t: entries[next(m for u in units if task_of.get(u.name) == t for m in u.members)].classes
                      for t in set(task_of.values())},
        summary=[f"Submission: `{out}` (rule `{recipe.rule}` per task); recipe: `{recipe_path}`",
                 *([f"Why this recipe: {recipe.note}"] if recipe.note else [])])
    _, result = outputs.commit_vote(out, frame, spec.n_classes, dataset.test_info, recipe, req.overwrite,
                                    lambda: build_task_report(report_inputs, report_dir))
    return recipe_path, recipe, result
