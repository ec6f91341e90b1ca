"""Voting full members and task members together, task by task.

A *full* member predicts the flat composite class (e.g. the mask data's 18 classes); a *task*
member predicts one task of it (e.g. the 3 age bands). For every task, each member that covers
it contributes a distribution over that task: a full member its marginal, a task member its own
output. Each task is then voted as an ordinary flat problem (any rule of `ensemble.recipe`, or a
fitted one from `ensemble.compare`, cross-fitted there), and the per-task decisions are
re-encoded into the flat class. The flat probability table is the product of the per-task tables;
its argmax is the per-task argmax (a product of non-negative factors is largest where each
factor is), so the product and the per-task decision give the same labels and the labels are
taken from the per-task votes, as `CompositeSpec.per_task_vote_with_probs` does.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ensemble._checks import stack_members
from ensemble.composite import CompositeSpec
from ensemble.recipe import GROUP_RULE, Recipe, apply_stacked, write_yaml

FIXED = ("soft", "hard")  # rules that learn nothing, so the user's per-task weights are used as given
_FIELDS = ("rule", "composite", "task_members", "tasks", "note", "groups", "group_rule")


def task_distributions(spec: CompositeSpec, probs_by_name: Mapping[str, np.ndarray],
                       task_of: Mapping[str, str]) -> dict[str, dict[str, np.ndarray]]:
    """task -> {member -> [rows, size_t]}: a full member's marginal, a task member's own output.

    `task_of` names the task of every task member; members not in it are full members.
    A task no member covers raises ValueError naming it.
    """
    sizes = dict(spec.tasks)
    out: dict[str, dict[str, np.ndarray]] = {name: {} for name in spec.names}
    for member, probs in probs_by_name.items():
        probs = np.asarray(probs, dtype=np.float64)
        task = task_of.get(member)
        if task is None:
            for name, marginal in zip(spec.names, spec.task_probs(probs)):
                out[name][member] = marginal
            continue
        if task not in sizes:
            raise ValueError(f"member {member!r} is a member of task {task!r}, which is not in {spec.names}")
        if probs.shape[-1] != sizes[task]:
            raise ValueError(f"member {member!r} has {probs.shape[-1]} classes but task {task!r} has {sizes[task]}")
        out[task][member] = probs
    uncovered = [name for name, members in out.items() if not members]
    if uncovered:
        raise ValueError(f"task '{uncovered[0]}' has no member that covers it: add a full member or a "
                         f"'{uncovered[0]}' task member")
    return out


def task_labels(spec: CompositeSpec, y: np.ndarray) -> dict[str, np.ndarray]:
    """Each task's labels of flat labels y."""
    return dict(zip(spec.names, spec.decode(y).T))


@dataclass
class TaskRecipe:
    """Per task, a flat Recipe over the members that cover it; `task_members` says which members are
    task members (the rest are full members, read through their marginals). Round-trips through YAML."""

    rule: str
    composite: dict[str, Any]
    task_members: dict[str, str]            # task member -> its task
    tasks: dict[str, Recipe]                # task -> the recipe voting it
    note: str = ""
    groups: dict[str, list[str]] | None = None
    group_rule: str = ""

    def __post_init__(self) -> None:
        spec = CompositeSpec.from_dict(self.composite)
        self.composite = spec.to_dict()
        self.task_members = {str(k): str(v) for k, v in self.task_members.items()}
        self.tasks = {str(t): r if isinstance(r, Recipe) else Recipe.from_dict(r) for t, r in self.tasks.items()}
        if sorted(self.tasks) != sorted(spec.names):
            missing = [t for t in spec.names if t not in self.tasks]
            raise ValueError(f"a task recipe needs one recipe per task; task '{(missing or list(self.tasks))[0]}' "
                             f"is missing or unknown")
        for member, task in self.task_members.items():
            if task not in self.tasks:
                raise ValueError(f"member {member!r} is a member of task {task!r}, which is not in {spec.names}")
            for other, recipe in self.tasks.items():
                if other != task and member in recipe.members:
                    raise ValueError(f"task member {member!r} ({task}) is named in the recipe of task {other!r}")
        self.note = str(self.note)
        if self.groups is not None:
            self.groups = {str(k): [str(m) for m in v] for k, v in self.groups.items()}
            self.group_rule = self.group_rule or GROUP_RULE

    @property
    def spec(self) -> CompositeSpec:
        return CompositeSpec.from_dict(self.composite)

    @property
    def member_names(self) -> list[str]:
        """Every member the recipe votes, in first-use order over the tasks."""
        return list(dict.fromkeys(m for task in self.spec.names for m in self.tasks[task].members))

    @property
    def members(self) -> dict[str, float]:
        """`member:task` -> weight, the way `--weights` names them (for printing)."""
        return {f"{m}:{task}": w for task in self.spec.names for m, w in self.tasks[task].members.items()}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "composite": self.composite, "task_members": dict(self.task_members),
                               "tasks": {t: self.tasks[t].to_dict() for t in self.spec.names}, "note": self.note}
        if self.groups is not None:
            out["groups"] = {k: list(v) for k, v in self.groups.items()}
            out["group_rule"] = self.group_rule
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskRecipe:
        unknown = set(data) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown task-recipe fields: {sorted(unknown)}")
        return cls(rule=data["rule"], composite=data["composite"], task_members=dict(data.get("task_members") or {}),
                   tasks=dict(data["tasks"]), note=data.get("note") or "", groups=data.get("groups"),
                   group_rule=data.get("group_rule") or "")

    def to_yaml(self, path: str | Path, write_text: Callable[[Path, str], Any] | None = None) -> Path:
        return write_yaml(self.to_dict(), path, write_text)  # the same writer as a flat recipe's


def is_task_recipe(data: Any) -> bool:
    """True for the mapping of a saved TaskRecipe (a recipe file with per-task recipes)."""
    return isinstance(data, Mapping) and "tasks" in data and "task_members" in data


def apply_tasks(recipe: TaskRecipe, probs_by_name: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(flat labels [rows], flat table [rows, classes]) from member probabilities keyed by name."""
    missing = [m for m in recipe.member_names if m not in probs_by_name]
    if missing:
        raise ValueError(f"recipe member(s) missing from the probabilities: {', '.join(missing)}")
    spec = recipe.spec
    dists = task_distributions(spec, {m: probs_by_name[m] for m in recipe.member_names}, recipe.task_members)
    labels, tables = [], []
    for task in spec.names:
        names, probs = stack_members(dists[task])
        task_labels_, table = apply_stacked(recipe.tasks[task], probs, names)
        labels.append(task_labels_)
        tables.append(table)
    return spec.encode(np.stack(labels, axis=1)), spec.combine(tables)


def fixed_recipe(rule: str, composite: dict, task_of: Mapping[str, str], members: list[str],
                 weights: Mapping[str, Mapping[str, float]] | None = None) -> TaskRecipe:
    """`soft` or `hard` per task with per-member per-task weights (default 1)."""
    if rule not in FIXED:
        raise ValueError(f"a fixed task rule is one of {list(FIXED)}, not {rule!r}")
    spec = CompositeSpec.from_dict(composite)
    weights = weights or {}
    tasks = {}
    for task in spec.names:
        covering = [m for m in members if task_of.get(m, task) == task]
        if not covering:
            raise ValueError(f"task '{task}' has no member that covers it: add a full member or a '{task}' task member")
        w = {m: float(weights.get(task, {}).get(m, 1.0)) for m in covering}
        if not any(v > 0 for v in w.values()) or not all(math.isfinite(v) and v >= 0 for v in w.values()):
            raise ValueError(f"task '{task}': the weights of its members must be non-negative and not all zero")
        tasks[task] = Recipe(rule, w)
    return TaskRecipe(rule, spec.to_dict(), {m: t for m, t in task_of.items() if m in members}, tasks)


@dataclass
class TaskInputs:
    """Everything a task vote works on: one probability table per member (flat or one task's)."""
    spec: CompositeSpec
    probs: dict[str, np.ndarray]            # member -> [rows, classes of the member]
    task_of: dict[str, str]                 # task members -> their task
    y: np.ndarray                           # flat labels [rows]
    groups: np.ndarray | None = None
    weights: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> member -> weight
