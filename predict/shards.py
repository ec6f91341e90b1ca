"""Sharded inference under torchrun: each process predicts one contiguous block of rows and
writes a shard; rank 0 merges the shards into one cache file per member and split, in the
original row order.

    torchrun --nproc_per_node=N -m scripts.predict --members a b c

Only barriers and a small agreement flag cross process boundaries (gloo, on CPU and GPU
machines alike); predictions travel as shard files in the cache folder, which every
process must see (one machine, or a shared file system).
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core import atomic
from core.errors import UserError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def block(self, n: int) -> tuple[int, int]:
        """This process's rows [lo, hi): contiguous, sizes differ by at most one."""
        return n * self.rank // self.size, n * (self.rank + 1) // self.size

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist  # lazy: only a torchrun world has barriers

            dist.barrier()

    def any(self, flags: list[bool]) -> list[bool]:
        """Element-wise OR across processes, so every process takes the same decisions."""
        if not self.distributed or not flags:
            return list(flags)
        import torch  # lazy: only a torchrun world exchanges flags
        import torch.distributed as dist

        votes = torch.tensor([int(f) for f in flags], dtype=torch.int64)
        dist.all_reduce(votes, op=dist.ReduceOp.MAX)
        return [bool(v) for v in votes.tolist()]

    def device(self, name: str) -> torch.device:
        """`auto` gives each process on a GPU machine its own GPU (cuda:LOCAL_RANK)."""
        # lazy: only a member that must run needs a device (core.distributed imports torch too)
        import torch

        from core.distributed import parse_device

        if name == "auto":
            return torch.device(f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu")
        return parse_device(name, "--device", "--device auto")


def current() -> World:
    # Without torch loaded no process group can exist, so a cached vote never imports it to ask.
    torch = sys.modules.get("torch")
    if torch is None:
        return World()
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return World()


@contextlib.contextmanager
def joined_from_env() -> Iterator[World]:
    """Join the process group torchrun describes (WORLD_SIZE > 1); a plain run is a world of one."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield current()
        return
    import torch.distributed as dist  # lazy: only torchrun needs a process group

    if dist.is_initialized():
        yield current()
        return
    dist.init_process_group(backend="gloo")
    try:
        yield current()
    finally:
        dist.destroy_process_group()


def shard_path(final: Path, rank: int, size: int) -> Path:
    return final.with_name(f"{final.stem}.shard-{rank}-of-{size}.npz")


def save_shard(final: Path, world: World, lo: int, hi: int, n_rows: int, key: str, logits: np.ndarray) -> Path:
    path = shard_path(final, world.rank, world.size)
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, logits=logits.astype(np.float32), lo=np.int64(lo), hi=np.int64(hi),
                     n_rows=np.int64(n_rows), key=np.asarray(key))
    return path


def merge_shards(final: Path, size: int, n_rows: int, key: str) -> np.ndarray:
    """Stitch every shard's rows back into [n_rows, C] in the original order; remove the shards."""
    paths = [shard_path(final, rank, size) for rank in range(size)]
    parts = []
    for path in paths:
        if not path.exists():
            raise UserError(f"shard {path} is missing; did every process finish?")
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key or int(z["n_rows"]) != n_rows:
                raise UserError(f"shard {path} belongs to another run (cache key or row count differs)")
            parts.append((int(z["lo"]), int(z["hi"]), z["logits"]))
    parts.sort(key=lambda part: part[0])
    expected = 0
    for lo, hi, logits in parts:
        if lo != expected or len(logits) != hi - lo:
            raise UserError(f"shards for {final} do not tile rows 0..{n_rows - 1} (gap or overlap at row {expected})")
        expected = hi
    if expected != n_rows:
        raise UserError(f"shards for {final} cover {expected} of {n_rows} rows")
    width = max(part[2].shape[1] for part in parts)
    merged = np.concatenate([p[2].reshape(len(p[2]), width) for p in parts])
    for path in paths:
        path.unlink()
    return merged
