"""What the report looks up in the project beyond predictions: run folders, the composite label
layout, validation image files, and the wandb record of an ensemble.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.config import MemberConfig
from core.entry import RegistryEntry
from core.errors import UserError
from core.registry import Registry
from ensemble.composite import CompositeSpec
from report.builder import ReportResult
from report.wandb_log import EnsembleLog


def run_folder(registry: Registry, entry: RegistryEntry) -> Path | None:
    """The member's run folder: `run:` in its entry, else the folder of its merged config.

    Imported members (predictions made elsewhere) have no run folder of their own.
    """
    if entry.is_imported:
        return None
    folder = registry.resolve(entry.run) if entry.run else registry.resolve(entry.config).parent
    return folder if folder.is_dir() else None


def composite_of(entries: list[RegistryEntry], config: MemberConfig) -> CompositeSpec | None:
    """The composite layout an entry declares, else the one its data config declares; None if neither."""
    first = entries[0]
    declared = first.composite or config.data.composite
    for entry in entries[1:]:
        if entry.composite is not None and entry.composite != declared:
            raise UserError(f"members '{first.name}' and '{entry.name}' declare different composite "
                            f"label layouts")
    if declared is None:
        return None
    try:
        spec = CompositeSpec.from_dict(declared)
    except ValueError as err:
        raise UserError(f"member '{first.name}': composite layout {declared!r} is invalid: {err}") from err
    if spec.n_classes != len(first.classes):
        raise UserError(f"member '{first.name}': composite layout {spec.names} makes {spec.n_classes} "
                        f"classes but the member has {len(first.classes)}")
    return spec


def val_image_paths(train: pd.DataFrame, ids: np.ndarray) -> list[str | None]:
    """Image file of each validation id, None for ids no longer in the data (the gallery greys them)."""
    by_id = train.drop_duplicates("id").set_index("id")["path"]
    found = by_id.reindex([str(i) for i in ids])
    return [None if pd.isna(p) else str(p) for p in found]


def ensemble_log(name: str, entries: list[RegistryEntry], config: MemberConfig, entity: str | None, result: ReportResult,
                 y: np.ndarray, pred: np.ndarray, classes: list[str], submission: Path | None) -> EnsembleLog:
    """The wandb record: tables, confusion matrix and the artifact files of one built report."""
    group = entries[0].group or config.ensemble
    files = {"recipe.yaml": result.file("recipe.yaml"), "metrics.json": result.file("metrics.json")}
    if submission is not None:
        files["submission.csv"] = Path(submission)
    tables = {"scores/val": result.val_table}
    if result.test_table is not None:
        tables["scores/test"] = result.test_table
    if result.compare_table is not None:
        tables["compare"] = result.compare_table
    primary = result.metrics["primary"]
    row = result.val_table.set_index("name").loc[primary]
    return EnsembleLog(
        name=name, project=config.tracking.wandb.project, group=group,
        entity=config.tracking.wandb.entity or entity, tables=tables, y=np.asarray(y), pred=np.asarray(pred),
        classes=list(classes), files=files,
        images={"report/" + p.stem: p for p in sorted(result.folder.glob("*.png"))
                if p.stem in ("gallery", "learning_curves", "disagreement")},
        summary={"val/f1_macro": float(row["f1_macro"]), "val/acc": float(row["acc"])},
        config={"members": [e.name for e in entries], "recipe": result.metrics["recipe"]},
    )


def log_to_wandb(mode: str, wandb_dir: Path, log: EnsembleLog) -> Path | None:
    """Log the ensemble; a wandb failure names the mode and how to go on without it."""
    if mode == "disabled":
        return None
    from wandb.errors import Error as WandbError

    from report.wandb_log import log_ensemble

    try:
        return log_ensemble(log, mode, wandb_dir)
    except (WandbError, OSError) as err:
        raise UserError(f"wandb logging ({mode}) failed: {err.__class__.__name__}: {err}; "
                        f"the report is written, rerun with --wandb disabled or offline") from err
