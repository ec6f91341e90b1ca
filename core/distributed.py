"""One member on several processes (torchrun): who owns the files, and how ranks agree.

`torchrun --nproc_per_node=N -m scripts.train ...` sets RANK, WORLD_SIZE and LOCAL_RANK.
Every rank trains on its shard of each epoch (DistributedDataParallel averages the
gradients); rank 0 alone evaluates on the whole validation set, writes the run
folder, talks to wandb and registers the member. The other ranks only read.
Small control messages (stop flags, loss sums) travel over a CPU (gloo) group so
they never force a GPU synchronisation.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from core.errors import UserError

log = logging.getLogger("members")


def parse_device(name: str, what: str, auto: str) -> torch.device:
    """A device the user named (`what` says where, e.g. "--device"), checked against this machine.

    torch.device accepts 'cuda:7' on a machine with one GPU and fails deep inside the first
    copy; a typo such as 'gpu7' raises a RuntimeError listing every backend. Both become one line here.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(f"{what} is '{name}', not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"{what} is '{name}'; this tool runs on auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{what} is '{name}' but no CUDA GPU is visible; use {auto}")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"{what} is '{name}' but only {torch.cuda.device_count()} CUDA GPU(s) are visible "
                            f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"{what} is '{name}' but MPS is not available on this machine; use {auto}")
    return device


def resolve_device(name: str) -> torch.device:
    return parse_device(name, "config key 'train.device'", "train.device=auto")


@dataclass
class DistContext:
    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    control: object | None = None  # process group for CPU tensors

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def any(self, flag: bool) -> bool:
        """True on every rank as soon as one rank says True (a signal may reach only one)."""
        if not self.enabled:
            return bool(flag)
        t = torch.tensor([1 if flag else 0], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control)
        return bool(t.item())

    def sum(self, values: list[float]) -> list[float]:
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=self.control)
        return t.tolist()

    def from_main(self, flag: bool) -> bool:
        """Rank 0's decision (early stop, end of training) handed to every rank."""
        if not self.enabled:
            return bool(flag)
        t = torch.tensor([1 if flag else 0], dtype=torch.int32)
        dist.broadcast(t, src=0, group=self.control)
        return bool(t.item())

    def describe(self) -> str:
        if not self.enabled:
            return str(self.device)
        return f"{self.device.type}; distributed: {self.world} processes, backend {dist.get_backend()}"

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def launched_world() -> int:
    """How many processes torchrun started for this job (1 without torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as err:
        raise UserError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number") from err


def setup(device_name: str) -> DistContext:
    """Single process unless launched by torchrun; then nccl on GPUs, gloo on CPUs."""
    world = launched_world()
    if world <= 1:
        return DistContext(resolve_device(device_name))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    wanted = resolve_device(device_name)
    if wanted.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"rank {rank} needs GPU {local_rank} but only {torch.cuda.device_count()} are visible; "
                            "lower --nproc_per_node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
        control = dist.new_group(backend="gloo")
    else:
        device = wanted
        dist.init_process_group("gloo")
        control = None  # the default group is already a CPU group
    if rank != 0:
        # Every rank runs the same code; only rank 0 speaks, so the console reads like one run.
        logging.getLogger("members").setLevel(logging.WARNING)
    return DistContext(device, rank, world, local_rank, control)
