"""What a training run holds while it trains, and what it hands back when it ends."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from members.early_stopping import EarlyStopping
from modeling.timm_lib import ModelEmaV3


@dataclass
class EpochOutputs:
    logits: np.ndarray
    probs: np.ndarray
    loss: float


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=dict)
    best_epoch: int | None = None
    best_outputs: EpochOutputs | None = None
    stopped_early: bool = False
    ema_best: dict = field(default_factory=dict)
    ema_best_epoch: int | None = None


@dataclass
class RunState:
    """Everything that changes while training: together it is the resumable state (members/checkpoints.py)."""
    model: nn.Module
    ema: ModelEmaV3 | None
    scaler: torch.amp.GradScaler
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    stopper: EarlyStopping
    ema_stopper: EarlyStopping
    result: TrainResult
    global_step: int = 0
