"""Early stopping with patience, min_delta and a direction.

Semantics (pinned by tests): the first finite value is always an improvement;
later a value improves only if it beats the best by more than `min_delta` in the
monitored direction; NaN or inf never improves; training stops once `patience`
consecutive epochs have passed without improvement (patience=0 stops at the
first epoch that does not improve).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class EarlyStopping:
    mode: str = "max"
    patience: int = 5
    min_delta: float = 0.0
    best: float | None = field(default=None, init=False)
    best_epoch: int | None = field(default=None, init=False)
    bad_epochs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', not {self.mode!r}")
        if self.patience < 0 or self.min_delta < 0:
            raise ValueError("patience and min_delta must be >= 0")

    def improved(self, value: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def step(self, value: float, epoch: int) -> bool:
        """Record one epoch's value; return True when this epoch is the new best."""
        if self.improved(value):
            self.best, self.best_epoch, self.bad_epochs = float(value), epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs > self.patience

    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load(self, state: dict) -> None:
        self.best, self.best_epoch, self.bad_epochs = state["best"], state["best_epoch"], state["bad_epochs"]
