"""Batches from the decoded uint8 pool, for training and validation.

`EpochOrder` decides which pool rows each rank sees in an epoch. It is seeded by
the epoch number (DistributedSampler semantics), so a resumed run sees exactly
the batches the uninterrupted run would have seen, and DDP ranks see disjoint shards.

Two feeds turn rows into (uint8 NCHW images, labels) batches:
- `LoaderFeed`: a DataLoader whose workers run per-sample CPU transforms
  (`train.augment.mode: per_sample`, the CPU default);
- `PoolFeed`: gathers whole batches from the pool and leaves augmentation to
  `BatchAugment` on the device. How the pool reaches the device (`train.feed`):
  `resident` copies the whole uint8 pool into one tensor on the training device
  once (chunk by chunk, so host memory stays bounded by the memmap) and indexes
  batches there; on a CPU device that is one in-memory tensor, the same indexing
  lines the GPU runs. `stream` gathers the next batch into pinned memory and copies
  it on a side CUDA stream while the current batch trains (CUDA only: on a CPU it
  reads batches from the memmap, as `auto` does there). On a GPU `auto` is resident
  when the pool takes under 40% of the free GPU memory, else stream.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from members.augment import ArrayDataset, BatchAugment, resolve_mode, train_transform
from members.losses import pack_targets

log = logging.getLogger("members")
RESIDENT_SHARE = 0.4     # of free GPU memory; the rest is left for the model and activations
UPLOAD_CHUNK = 1024      # rows per host-to-device copy while making the pool resident
Batch = tuple[torch.Tensor, torch.Tensor]


class EpochOrder:
    """This rank's training batches for one epoch: pool row indices, a fixed number per epoch."""

    def __init__(self, rows: np.ndarray, labels: np.ndarray, batch_size: int, seed: int, rank: int = 0,
                 world: int = 1, balanced: bool = False):
        self.rows = np.asarray(rows)
        self.batch_size = batch_size
        self.seed, self.rank, self.world = seed, rank, world
        self.per_rank = -(-len(self.rows) // world)
        # Drop a ragged last batch (a batch of 1 breaks BatchNorm), unless that would leave nothing.
        self.drop_last = self.per_rank > batch_size
        self.weights = None
        if balanced:
            counts = np.bincount(labels[self.rows])
            self.weights = torch.as_tensor(1.0 / counts[labels[self.rows]], dtype=torch.float64)

    def __len__(self) -> int:
        full, rest = divmod(self.per_rank, self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def positions(self, epoch: int) -> np.ndarray:
        if self.weights is None:
            sampler = DistributedSampler(range(len(self.rows)), num_replicas=self.world, rank=self.rank,
                                         shuffle=True, seed=self.seed)
            sampler.set_epoch(epoch)
            return np.fromiter(sampler, dtype=np.int64)
        # Class-balanced draws with replacement: every class is drawn equally often on average.
        generator = torch.Generator().manual_seed(self.seed + epoch)
        draws = torch.multinomial(self.weights, self.per_rank * self.world, replacement=True, generator=generator)
        return draws.numpy()[self.rank::self.world]

    def batches(self, epoch: int) -> list[np.ndarray]:
        rows = self.rows[self.positions(epoch)]
        return [rows[i * self.batch_size:(i + 1) * self.batch_size] for i in range(len(self))]


class FixedBatches:
    """Validation: every row once, in order, the same batches every epoch."""

    def __init__(self, rows: np.ndarray, batch_size: int):
        rows = np.asarray(rows)
        self.chunks = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]

    def __len__(self) -> int:
        return len(self.chunks)

    def batches(self, epoch: int) -> list[np.ndarray]:
        return self.chunks


def nchw(images: torch.Tensor) -> torch.Tensor:
    # A view, not a copy: NHWC memory seen as NCHW has channels_last strides, which the GPU path wants.
    return images.permute(0, 3, 1, 2)


def choose_placement(requested: str, device: torch.device, nbytes: int) -> str:
    if device.type != "cuda":
        # Only stream's side-stream prefetch needs CUDA; auto keeps reading the memmap on a CPU.
        return "resident" if requested == "resident" else "host"
    if requested != "auto":
        return requested
    free, _ = torch.cuda.mem_get_info(device)
    return "resident" if nbytes < RESIDENT_SHARE * free else "stream"


class Pool:
    """The decoded uint8 [N, H, W, 3] images and their labels, placed for fast batch gathering."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, device: torch.device, placement: str):
        self.images = images
        self.device = device
        self.placement = placement
        labels = np.asarray(labels)  # 2-D: packed distillation targets, kept float
        self.labels = torch.as_tensor(labels, dtype=torch.long if labels.ndim == 1 else torch.float32)
        self.resident = None
        if placement == "resident":
            self.resident = self._upload()
            self.labels = self.labels.to(device)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.images.shape))

    def _upload(self) -> torch.Tensor:
        out = torch.empty(self.images.shape, dtype=torch.uint8, device=self.device)
        cuda = self.device.type == "cuda"
        for start in range(0, len(self.images), UPLOAD_CHUNK):
            chunk = torch.from_numpy(np.ascontiguousarray(self.images[start:start + UPLOAD_CHUNK]))
            # Pinned, asynchronous copies are the CUDA-only part; on a CPU this is a plain copy.
            out[start:start + len(chunk)].copy_(chunk.pin_memory() if cuda else chunk, non_blocking=cuda)
        if cuda:
            torch.cuda.synchronize(self.device)
        return out

    def _host(self, rows: np.ndarray) -> Batch:
        """NHWC uint8 rows gathered from the memmap (a copy of just this batch)."""
        return torch.from_numpy(self.images[rows]), self.labels[torch.from_numpy(rows)]

    def iterate(self, batches: list[np.ndarray]) -> Iterator[Batch]:
        if self.placement == "resident":
            for rows in batches:
                index = torch.from_numpy(rows).to(self.device, non_blocking=True)
                yield nchw(self.resident[index]), self.labels[index]
        elif self.placement == "stream":
            yield from self._stream(batches)
        else:
            for rows in batches:
                images, labels = self._host(rows)
                yield nchw(images), labels

    def _stream(self, batches: list[np.ndarray]) -> Iterator[Batch]:
        side = torch.cuda.Stream(self.device)
        current = torch.cuda.current_stream(self.device)

        def load(rows: np.ndarray) -> Batch:
            images, labels = self._host(rows)
            with torch.cuda.stream(side):
                return (nchw(images.pin_memory().to(self.device, non_blocking=True)),
                        labels.pin_memory().to(self.device, non_blocking=True))

        if not batches:
            return
        ahead = load(batches[0])
        for i in range(len(batches)):
            current.wait_stream(side)
            images, labels = ahead
            images.record_stream(current)
            labels.record_stream(current)
            yield images, labels
            # Gathered while the GPU still runs the step just queued for the previous batch.
            if i + 1 < len(batches):
                ahead = load(batches[i + 1])


class PoolFeed:
    """Whole batches gathered from the pool; augmentation (if any) happens later on the device."""

    def __init__(self, pool: Pool, plan):
        self.pool = pool
        self.plan = plan

    def __len__(self) -> int:
        return len(self.plan)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Batch]:
        return self.pool.iterate(self.plan.batches(epoch)[skip:])


class _PlannedBatches:
    """A DataLoader batch_sampler whose batches are replaced each epoch (workers can stay alive)."""

    def __init__(self):
        self.current: list[np.ndarray] = []

    def __iter__(self):
        return iter([rows.tolist() for rows in self.current])

    def __len__(self) -> int:
        return len(self.current)


class LoaderFeed:
    """Per-sample CPU transforms in DataLoader workers, for the rows an EpochOrder picks."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, order: EpochOrder, transform, num_workers: int,
                 pin_memory: bool, seed: int, deterministic: bool):
        self.order = order
        self.seed = seed
        self.planned = _PlannedBatches()
        self.generator = torch.Generator()
        # Persistent workers keep their RNG across epochs, which would make a resumed run differ.
        persistent = num_workers > 0 and not deterministic
        self.loader = DataLoader(ArrayDataset(images, labels, transform), batch_sampler=self.planned,
                                 num_workers=num_workers, pin_memory=pin_memory, generator=self.generator,
                                 persistent_workers=persistent)

    def __len__(self) -> int:
        return len(self.order)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Batch]:
        self.planned.current = self.order.batches(epoch)[skip:]
        self.generator.manual_seed(self.seed * 100_003 + epoch)  # worker seeds depend on the epoch only
        return iter(self.loader)


@dataclass
class Feeds:
    train: LoaderFeed | PoolFeed
    val: PoolFeed
    augment: BatchAugment | None   # applied by the trainer on the device when augmentation is batched
    mode: str                       # batched | per_sample
    placement: str                  # host | resident | stream


def build_feeds(config, images: np.ndarray, labels: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray,
                ctx, teacher: np.ndarray | None = None, targets: np.ndarray | None = None) -> Feeds:
    """The train and validation feeds one member (on one rank) trains with.

    `teacher` (float32 [pool rows, classes]) makes every batch carry the teacher's probabilities
    beside its labels, for distillation; the sampler still sees the plain labels. `targets` gives the
    per-row targets ready packed (pseudo-labelled rows: members.pseudo_loss)."""
    train, device = config.train, ctx.device
    mode = resolve_mode(train.augment, device)
    order = EpochOrder(train_idx, labels, train.batch_size, train.seed, ctx.rank, ctx.world,
                       balanced=train.class_balance == "sampler")
    placement = choose_placement(train.feed, device, int(np.prod(images.shape)))
    if targets is None:
        targets = labels if teacher is None else pack_targets(labels, teacher)
    pool = Pool(images, targets, device, placement)
    val = PoolFeed(pool, FixedBatches(val_idx, train.batch_size))
    if mode == "batched":
        feeds = Feeds(PoolFeed(pool, order), val, BatchAugment(train.augment), mode, placement)
    else:
        size = tuple(config.data.image_size)
        loader = LoaderFeed(images, targets, order, train_transform(size, train.augment), train.num_workers,
                            device.type == "cuda", train.seed, train.deterministic)
        feeds = Feeds(loader, val, None, mode, placement)
    log.info("feed: %s augmentation, pool %s (%.1f MiB uint8), %d batches of %d per epoch%s", mode, placement,
             pool.nbytes / 2**20, len(order), train.batch_size,
             f" on each of {ctx.world} ranks" if ctx.world > 1 else "")
    return feeds
