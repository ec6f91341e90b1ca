"""The part of a prediction run that needs a model: load members, decode their rows once, run them.

predict.run imports this module only when some member's cache misses, so a vote over cached
members never loads torch, timm or torchvision.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from core.entry import RegistryEntry
from core.registry import Registry
from core.settings import Settings
from predict.batches import make_batches
from predict.inference import EnsembleRunner
from predict.loading import load_member
from predict.resize import Preprocess, decode_size
from predict.shards import World
from predict.tta import TTA

log = logging.getLogger("predict")


@dataclass(frozen=True)
class Cost:
    """One member's measured forward time on this run (predict/inference.py), stored with its predictions."""
    ms_per_image: float
    device: str
    batch_size: int


def run_uncached(entries: list[RegistryEntry], registry: Registry, paths: list[str], part: str, settings: Settings,
                 world: World, device, tta: TTA, batch_size: int, decoder: str,
                 shard: str = "") -> tuple[list[np.ndarray], list[Cost]]:
    """Log-probabilities [len(paths), C] per member, every member on each decoded batch, and each member's
    measured cost; `part` is val, test or train, `shard` names this process's block of rows."""
    dev = world.device(device) if isinstance(device, str) else device
    members = [load_member(registry, entry) for entry in entries]
    preps = [Preprocess.from_entry(m.entry) for m in members]
    names = ", ".join(m.name for m in members)
    source = make_batches(paths, decode_size(preps), settings.image_cache, dev, decoder, desc=f"decode {part}{shard}")
    runner = EnsembleRunner([m.model for m in members], preps, dev, tta)
    logits = runner.run(source, batch_size, desc=f"{part}: {names}{shard}")
    if runner.batch_size != batch_size:
        log.warning("%s: finished with batch size %d after running out of memory", part, runner.batch_size)
    used = int(runner.batch_size or batch_size)
    costs = [Cost(runner.ms_per_image(i), str(dev), used) for i in range(len(members))]
    return [lg if lg.size else np.zeros((len(paths), len(m.classes)), np.float32)
            for m, lg in zip(members, logits)], costs
