"""wandb tracking: one run per member, grouped by ensemble, metrics on an explicit epoch axis."""
from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("members")


def _logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    return netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def effective_mode(requested: str) -> str:
    """Online only works with a login; without one we fall back to offline instead of prompting."""
    if requested == "online" and not _logged_in():
        log.info("wandb: no login found, logging offline (sync later with `wandb sync`)")
        return "offline"
    return requested


class Tracker:
    """Thin wrapper so the trainer never imports wandb when tracking is disabled."""

    def __init__(self, config, run_dir: Path, entity: str | None, config_dict: dict, enabled: bool = True):
        self.run = None
        mode = effective_mode(config.tracking.wandb.mode) if enabled else "disabled"
        if mode == "disabled":
            return
        import wandb

        os.environ.setdefault("WANDB_DIR", str(run_dir))
        self.run = wandb.init(
            project=config.tracking.wandb.project, entity=config.tracking.wandb.entity or entity,
            group=config.ensemble, job_type="train", name=config.name, config=config_dict,
            mode=mode, dir=os.environ["WANDB_DIR"], reinit="finish_previous",
        )
        self.run.define_metric("epoch")
        self.run.define_metric("train/*", step_metric="epoch")
        self.run.define_metric("val/*", step_metric="epoch")
        direction = "max" if config.early_stopping.mode == "max" else "min"
        self.run.define_metric(f"val/{config.early_stopping.monitor.removeprefix('val_')}", summary=direction)

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run else None

    def log_epoch(self, metrics: dict) -> None:
        if not self.run:
            return
        row = {"epoch": metrics["epoch"]}
        for key, value in metrics.items():
            if key.startswith("val_"):
                row[f"val/{key[4:]}"] = value
            elif key != "epoch":
                row[f"train/{key.removeprefix('train_')}"] = value
        self.run.log(row)

    def finish(self, summary: dict | None = None, exit_code: int = 0) -> None:
        if not self.run:
            return
        for key, value in (summary or {}).items():
            self.run.summary[key] = value
        self.run.finish(exit_code=exit_code)
        self.run = None
