"""The predict jobs: fill the prediction cache for registered members, or import predictions made elsewhere."""
from __future__ import annotations

import logging
from pathlib import Path

from core.registry import Registry
from core.settings import Settings
from predict import shards
from predict.cache import DECODERS
from predict.imports import import_predictions
from predict.run import SPLITS, predict_members
from predict.tta import VIEW_HELP

__all__ = ["DECODERS", "SPLITS", "VIEW_HELP", "import_command", "predict_command"]


def predict_command(members: list[str], settings: Settings, registry_path: str | None, splits, tta: str,
                    force: bool, device: str, batch_size: int, decoder: str) -> list[str]:
    """Predict (or reuse the cache); under torchrun only rank 0 returns lines to print."""
    with shards.joined_from_env() as world:
        if not world.is_main:
            logging.getLogger().setLevel(logging.WARNING)  # one voice; the other ranks speak only of trouble
        registry = Registry.chosen(registry_path, settings)
        results = predict_members(members, registry, settings, splits=splits, tta=tta, force=force,
                                  device=device, batch_size=batch_size, decoder=decoder)
        if not world.is_main:
            return []
        return [f"{name}: " + ", ".join(f"{split} {len(p.ids)} rows (TTA {p.tta})" for split, p in by_split.items())
                for name, by_split in results.items()]


def import_command(member: str, split: str, npz: Path, like: str, overwrite: bool, registry_path: str | None,
                   settings: Settings) -> str:
    registry = Registry.chosen(registry_path, settings)
    path = import_predictions(registry, settings, member, split, npz, like, overwrite)
    return f"{member}: {split} predictions checked against '{like}' and stored in {path}"
