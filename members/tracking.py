"""wandb tracking: one run per member, grouped by ensemble (job_type "train").

Two step axes, declared with define_metric: per-batch points (`batch/loss`, `batch/lr`)
run on `batch/step`; every epoch-level `train/*` and `val/*` metric runs on `epoch`.
The monitored validation metric's summary is its best value (max or min, as monitored).
A resumed run continues the same wandb run. Without a login, "online" falls back to offline.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from core.wandb_mode import effective_mode, keep_inside

log = logging.getLogger("members")


def metric_name(key: str) -> str:
    """History column → wandb name: val_f1_macro → val/f1_macro, train_loss → train/loss, lr → train/lr."""
    if key.startswith("val_"):
        return f"val/{key[4:]}"
    return f"train/{key.removeprefix('train_')}"


class Tracker:
    """Thin wrapper so the trainer never imports wandb when tracking is disabled."""

    def __init__(self, config, run_dir: Path, entity: str | None, config_dict: dict, enabled: bool = True,
                 resume_id: str | None = None):
        self.run = None
        mode = effective_mode(config.tracking.wandb.mode) if enabled else "disabled"
        if mode == "disabled":
            return
        import wandb

        # WANDB_DIR wins; otherwise wandb's files live in the run folder (not process-wide, so a demo's
        # second member gets its own folder too).
        wandb_dir = os.environ.get("WANDB_DIR") or str(run_dir)
        Path(wandb_dir).mkdir(parents=True, exist_ok=True)
        keep_inside(wandb_dir)
        self.run = wandb.init(
            project=config.tracking.wandb.project, entity=config.tracking.wandb.entity or entity,
            group=config.ensemble, job_type="train", name=config.name, config=config_dict,
            mode=mode, dir=wandb_dir, reinit="finish_previous",
            id=resume_id, resume="allow" if resume_id else None,
        )
        self.run.define_metric("batch/step")
        self.run.define_metric("batch/*", step_metric="batch/step")
        self.run.define_metric("epoch")
        self.run.define_metric("train/*", step_metric="epoch")
        self.run.define_metric("val/*", step_metric="epoch")
        direction = "max" if config.early_stopping.mode == "max" else "min"
        self.run.define_metric(metric_name(config.early_stopping.monitor), summary=direction)

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run else None

    def log_epoch(self, metrics: dict) -> None:
        if not self.run:
            return
        row = {"epoch": metrics["epoch"]}
        row.update({metric_name(key): value for key, value in metrics.items() if key != "epoch"})
        self.run.log(row)

    def log_batch(self, points: dict) -> None:
        """Keys already carry the `batch/` prefix and `batch/step`."""
        if self.run:
            self.run.log(points)

    def finish(self, summary: dict | None = None, exit_code: int = 0) -> None:
        if not self.run:
            return
        for key, value in (summary or {}).items():
            self.run.summary[key] = value
        self.run.finish(exit_code=exit_code)
        self.run = None
