"""Task members: a member trained on ONE task of a composite label (e.g. the age band of the mask data).

The dataset keeps every row and its composite label; only the label a member learns changes
(`label` becomes that task's digit of the composite class). The split is still made on the
composite labels, so a task member shares the split file, groups and folds of the full
members, whichever of them trains first, and their validation rows line up.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from core.errors import UserError

COMPOSITE_LABEL = "composite_label"  # the train table's column that keeps the full class of a task member's rows


def task_layout(composite: dict) -> list[tuple[str, int]]:
    """(name, size) of each task, most significant first, as `data.composite` declares them."""
    return [(str(task["name"]), int(task["size"])) for task in composite["tasks"]]


def task_digits(labels: np.ndarray, composite: dict) -> dict[str, np.ndarray]:
    """Each task's label of every composite class label (mixed radix, first task most significant)."""
    layout = task_layout(composite)
    digits = np.unravel_index(np.asarray(labels, dtype=np.int64), [size for _, size in layout])
    return {name: np.asarray(d, dtype=np.int64) for (name, _), d in zip(layout, digits)}


def task_classes(dataset, name: str) -> list[str]:
    """The task's class names: the source's own (the mask layout names them), else '<task>=<digit>'."""
    size = dict(task_layout(dataset.composite))[name]
    named = (dataset.task_classes or {}).get(name)
    return list(named) if named else [f"{name}={i}" for i in range(size)]


def task_view(dataset, name: str):
    """The dataset as a member of task `name` sees it: that task's labels and class names."""
    if dataset.composite is None:
        raise UserError(f"data.task '{name}' needs a composite label, but the {dataset.name} data declares none "
                        f"(set data.composite, or use the mask source)")
    names = [task for task, _ in task_layout(dataset.composite)]
    if name not in names:
        raise UserError(f"data.task '{name}' is not a task of the composite label (tasks: {', '.join(names)})")
    train = dataset.train.copy()
    train[COMPOSITE_LABEL] = train["label"].astype(np.int64)
    train["label"] = task_digits(train[COMPOSITE_LABEL].to_numpy(), dataset.composite)[name]
    return replace(dataset, classes=task_classes(dataset, name), train=train, composite=None,
                   task={"name": name, "of": dataset.composite})


def split_table(train: pd.DataFrame) -> pd.DataFrame:
    """The rows a split is made on: with their composite labels, so every member of a composite shares it."""
    if COMPOSITE_LABEL not in train.columns:
        return train
    return train.assign(label=train[COMPOSITE_LABEL]).drop(columns=[COMPOSITE_LABEL])
