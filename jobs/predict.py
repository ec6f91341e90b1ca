"""The predict jobs: fill the prediction cache for registered members, or import predictions made elsewhere."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UserError
from core.registry import Registry
from core.settings import Settings
from predict import shards
from predict.cache import PARTS
from predict.imports import import_predictions
from predict.run import predict_members

__all__ = ["ImportRequest", "ImportResult", "PredictRequest", "PredictResult", "import_command", "predict_command"]


@dataclass
class PredictRequest:
    members: list[str]
    parts: list[str] = field(default_factory=lambda: list(PARTS))   # val and/or test rows
    tta: str = "none"
    force: bool = False          # recompute even when the cache is fresh
    device: str = "auto"
    batch_size: int = 256
    decoder: str = "pil"
    registry: str | None = None


@dataclass
class PredictResult:
    lines: list[str]             # one per member; empty on every rank but 0 under torchrun


@dataclass
class ImportRequest:
    member: str                  # the name the imported predictions vote under
    part: str                    # val or test
    npz: Path
    like: str                    # registered member whose classes and rows must match
    overwrite: bool = False
    registry: str | None = None


@dataclass
class ImportResult:
    path: Path
    line: str


def predict_command(req: PredictRequest, settings: Settings) -> PredictResult:
    """Predict (or reuse the cache); under torchrun only rank 0 returns lines to print."""
    if req.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, not {req.batch_size}")
    with shards.joined_from_env() as world:
        if not world.is_main:
            logging.getLogger().setLevel(logging.WARNING)  # one voice; the other ranks speak only of trouble
        registry = Registry.chosen(req.registry, settings)
        results = predict_members(req.members, registry, settings, parts=req.parts, tta=req.tta, force=req.force,
                                  device=req.device, batch_size=req.batch_size, decoder=req.decoder)
        if not world.is_main:
            return PredictResult([])
        return PredictResult([f"{name}: " + ", ".join(f"{split} {len(p.ids)} rows (TTA {p.tta})"
                                                      for split, p in by_split.items())
                              for name, by_split in results.items()])


def import_command(req: ImportRequest, settings: Settings) -> ImportResult:
    registry = Registry.chosen(req.registry, settings)
    path = import_predictions(registry, settings, req.member, req.part, req.npz, req.like, req.overwrite)
    return ImportResult(path, f"{req.member}: {req.part} predictions checked against '{req.like}' and stored in {path}")
