"""Predict a member's val and test rows in the process that just trained it (`scripts.train --predict`).

A plan's member task (launch/member_task.py) runs `scripts.train --predict` instead of `scripts.train`
followed by `scripts.predict`: one interpreter per member, so torch and timm are imported once rather
than twice (several seconds each on a small CPU box, most of a tiny member's time). The prediction is
the predict command's own job; only what training changed in torch's global settings is put back
first, so the cache holds what a separate `scripts.predict` process writes.
"""
from __future__ import annotations

import torch

from core.distributed import launched_world
from core.errors import UserError
from core.settings import Settings
from jobs.predict import PredictRequest, predict_command
from jobs.train import TrainRequest


def check_request(req: TrainRequest) -> None:
    """What `--predict` cannot be combined with, refused before any work."""
    if req.smoke:
        raise UserError("--predict needs a registered member, and --smoke registers nothing")
    if launched_world() > 1:
        raise UserError("--predict runs in one process: under torchrun, predict afterwards with "
                        "torchrun -m scripts.predict --members NAME")


def predict_trained(member: str, req: TrainRequest, settings: Settings) -> list[str]:
    """The predict job for the member just registered: its val and test rows, default options."""
    # A fresh `scripts.predict` process starts with torch's defaults; training may have asked for
    # deterministic algorithms, which can pick other GPU kernels.
    torch.use_deterministic_algorithms(False)
    return predict_command(PredictRequest([member], registry=req.registry_path), settings).lines
