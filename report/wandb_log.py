"""Log an ensemble to wandb as one run (job_type "ensemble") in its members' group.

The run holds the member/ensemble table, the confusion matrix and an artifact with
the submission, the recipe and metrics.json, so the dashboard that shows the
members' training runs also shows what voting them together gave.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.wandb_mode import effective_mode, keep_inside


@dataclass
class EnsembleLog:
    name: str
    project: str
    group: str
    entity: str | None
    tables: dict[str, pd.DataFrame]          # wandb key -> table, e.g. "scores/val"
    y: np.ndarray                             # validation labels, for the confusion matrix
    pred: np.ndarray                          # the ensemble's validation predictions
    classes: list[str]
    files: dict[str, Path]                    # artifact entry name -> file (submission, recipe, metrics)
    images: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, float] = field(default_factory=dict)
    config: dict = field(default_factory=dict)


def artifact_name(name: str) -> str:
    # wandb accepts letters, digits, dashes, underscores and dots in artifact names.
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "ensemble"


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    # wandb.Table cannot serialise pandas' NA; None is its missing value.
    return frame.astype(object).where(frame.notna(), None)


def log_ensemble(record: EnsembleLog, mode: str, wandb_dir: Path) -> Path | None:
    """Log one ensemble run; returns the local run folder, or None when tracking is disabled."""
    mode = effective_mode(mode)
    if mode == "disabled":
        return None
    import wandb

    wandb_dir = Path(os.environ.get("WANDB_DIR") or wandb_dir)
    wandb_dir.mkdir(parents=True, exist_ok=True)
    keep_inside(wandb_dir)
    run = wandb.init(project=record.project, entity=record.entity, group=record.group, job_type="ensemble",
                     name=record.name, config=record.config, mode=mode, dir=str(wandb_dir),
                     reinit="finish_previous")
    try:
        logged = {key: wandb.Table(dataframe=_plain(frame)) for key, frame in record.tables.items()}
        logged["confusion_matrix"] = wandb.plot.confusion_matrix(
            y_true=record.y.tolist(), preds=record.pred.tolist(), class_names=list(record.classes),
            title=f"{record.name}: validation")
        logged.update({key: wandb.Image(str(path)) for key, path in record.images.items()})
        run.log(logged)
        for key, value in record.summary.items():
            run.summary[key] = value
        artifact = wandb.Artifact(artifact_name(record.name), type="ensemble",
                                  description=f"submission and recipe of ensemble {record.name}")
        for entry, path in record.files.items():
            artifact.add_file(str(path), name=entry)
        run.log_artifact(artifact)
        folder = Path(run.dir).parent
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()
    # finish() can return before wandb's service has flushed the offline run file;
    # teardown waits for it, so the folder is complete when a user (or `wandb sync`) reads it.
    wandb.teardown()
    return folder
