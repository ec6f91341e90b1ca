"""Batched inference: every member runs on each decoded batch, so an image is decoded once.

Members that share a preprocessing (size, filter, mean/std) share one resized, normalised
input per batch, and its TTA views. On a GPU every member runs in autocast (bf16, or fp16
where bf16 is missing); on every device in channels_last, which oneDNN on CPU also prefers.
When memory runs out the batch size is halved and the same rows are tried again.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from core.errors import UserError
from modeling.preprocess import Normalize, autocast_dtype, free_device_memory, is_out_of_memory
from predict.batches import make_batches
from predict.cache import softmax
from predict.resize import Preprocess, resize_batch
from predict.tta import TTA, parse_tta

log = logging.getLogger("predict")


@dataclass
class _Group:
    prep: Preprocess
    normalize: Normalize
    members: list[int]


class EnsembleRunner:
    """Runs K members over a batch source; `run` returns one float32 [N, C] log-probability array each."""

    def __init__(self, models: list[nn.Module], preps: list[Preprocess], device: torch.device,
                 tta: TTA | str | bool | None = None, channels_last: bool = True):
        self.device = device
        self.tta = parse_tta(tta)
        self.amp = autocast_dtype(device)
        self.channels_last = channels_last
        self.nets = [self._prepare(m) for m in models]
        groups: dict[Preprocess, _Group] = {}
        for i, prep in enumerate(preps):
            groups.setdefault(prep, _Group(prep, Normalize(prep.mean, prep.std).to(device), [])).members.append(i)
        self.groups = list(groups.values())
        self.batch_size: int | None = None   # the size that last worked, after any halving
        # Each member's own forward time (its TTA views included) and the rows it ran: its inference cost.
        self.seconds = [0.0] * len(self.nets)
        self.rows = 0

    def _timed_forward(self, i: int, views: list[torch.Tensor], spent: list[float]) -> torch.Tensor:
        start = time.perf_counter()
        probs = self._forward(self.nets[i], views)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # kernels run asynchronously: wait, so the time is this member's
        spent[i] += time.perf_counter() - start
        return probs

    def ms_per_image(self, i: int) -> float:
        return 1000.0 * self.seconds[i] / self.rows if self.rows else float("nan")

    def _prepare(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device).eval()
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def _forward(self, net: nn.Module, views: list[torch.Tensor]) -> torch.Tensor:
        probs = None
        for view in views:
            with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                p = torch.softmax(net(view).float(), dim=1)
            probs = p if probs is None else probs + p
        return probs / len(views)

    @torch.no_grad()
    def batch_probs(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """uint8 NCHW batch on the device → one [B, C] probability tensor per member."""
        out: list[torch.Tensor | None] = [None] * len(self.nets)
        spent = [0.0] * len(self.nets)
        resized: dict[tuple, torch.Tensor] = {}
        for group in self.groups:
            key = group.prep.resize_key
            if key not in resized:
                resized[key] = resize_batch(batch, group.prep.size, group.prep.interpolation)
            x = group.normalize(resized[key])
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            views = self.tta.views(x)
            for i in group.members:
                out[i] = self._timed_forward(i, views, spent)
        # Counted once the whole batch succeeded: a batch that ran out of memory is run again, smaller.
        self.seconds = [a + b for a, b in zip(self.seconds, spent)]
        self.rows += len(batch)
        return out

    def run(self, source, batch_size: int = 256, desc: str = "predict") -> list[np.ndarray]:
        n = len(source)
        chunks: list[list[np.ndarray]] = [[] for _ in self.nets]
        start = 0
        # One thread fetches the next rows while the members work on the current ones.
        with ThreadPoolExecutor(1) as pool, tqdm(total=n, desc=desc, unit="img", leave=False) as bar:
            def prefetch(lo: int) -> tuple[int, int, object]:
                hi = min(n, lo + batch_size)
                return lo, hi, pool.submit(source.fetch, lo, hi)

            pending = prefetch(0)
            while start < n:
                stop = min(n, start + batch_size)
                oom = False
                try:
                    lo, hi, future = pending
                    batch = future.result() if (lo, hi) == (start, stop) else source.fetch(start, stop)
                    if stop < n:
                        pending = prefetch(stop)
                    probs = self.batch_probs(batch)
                except Exception as err:
                    if not is_out_of_memory(err):
                        raise
                    oom = True
                if oom:
                    # Outside the except block, so the failed batch's tensors can actually be freed.
                    batch = probs = None
                    free_device_memory(self.device)
                    if batch_size == 1:
                        raise UserError("out of memory with a batch of one image; use a smaller --batch-size "
                                        "with fewer members at a time, or another device")
                    batch_size //= 2
                    log.warning("out of memory at rows %d-%d; retrying with batch size %d", start, stop - 1,
                                batch_size)
                    pending = prefetch(start)
                    continue
                for i, p in enumerate(probs):
                    # Log-probabilities stand in for logits: exact up to a constant for one view,
                    # and the natural choice after averaging TTA views.
                    chunks[i].append(torch.log(p.clamp_min(1e-12)).cpu().numpy().astype(np.float32))
                bar.update(stop - start)
                start = stop
        self.batch_size = batch_size
        return [np.concatenate(c) if c else np.zeros((0, 0), np.float32) for c in chunks]


def run_members(models: list[nn.Module], preps: list[Preprocess], source, device: torch.device,
                batch_size: int = 256, tta: TTA | str | bool | None = None, desc: str = "predict") -> list[np.ndarray]:
    """One float32 [N, C] log-probability array per member (TTA views merged on probabilities)."""
    return EnsembleRunner(models, preps, device, tta).run(source, batch_size, desc)


def predict_paths(model, normalize: Normalize, paths: list[str], size: tuple[int, int], device: torch.device,
                  cache_dir: Path, tta: TTA | str | bool | None = None) -> np.ndarray:
    """One model over image files: probabilities [N, C]. Used by training's smoke check."""
    mean = tuple(float(v) for v in (normalize.mean.flatten() / 255.0))
    std = tuple(float(v) for v in (normalize.std.flatten() / 255.0))
    prep = Preprocess(tuple(size), mean, std)
    source = make_batches(list(paths), tuple(size), cache_dir, device, desc="decode")
    return softmax(run_members([model], [prep], source, device, tta=tta)[0])

