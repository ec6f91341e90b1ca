"""The parts of timm this project uses, imported once without the wandb import timm does on the side.

`timm.utils.summary` runs `import wandb` whenever wandb is installed, only for timm's own training
script (`update_summary(..., log_wandb=True)`), which this project never calls. That import is most of
timm's import time (≈ 3 s of 6 on this project's 2-core box, 2026-12-07) and every training and
prediction process paid it. timm is therefore imported while `wandb` is marked unimportable, and the
mark is taken away at once: members.tracking and report.wandb_log still import wandb when a run logs to
it. Every module of the project takes timm's names from here, so the first import of timm is this one.
"""
from __future__ import annotations

import sys


def _import_timm_without_wandb() -> None:
    if "timm" in sys.modules or "wandb" in sys.modules:
        return  # already imported (then wandb came with it or was wanted anyway): nothing to save
    sys.modules["wandb"] = None  # type: ignore[assignment]  # `import wandb` raises ImportError, which timm skips
    try:
        import timm  # noqa: F401
    finally:
        if "wandb" in sys.modules and sys.modules["wandb"] is None:
            del sys.modules["wandb"]


_import_timm_without_wandb()

from timm import create_model, is_model, list_models  # noqa: E402
from timm.data import resolve_model_data_config  # noqa: E402
from timm.models import get_pretrained_cfg, split_model_name_tag  # noqa: E402
from timm.optim import param_groups_layer_decay  # noqa: E402
from timm.utils import ModelEmaV3  # noqa: E402

__all__ = ["ModelEmaV3", "create_model", "get_pretrained_cfg", "is_model", "list_models", "param_groups_layer_decay",
           "resolve_model_data_config", "split_model_name_tag"]
