"""The training loop: epochs of training and validation, early stopping; at each epoch's end and on a stop
request it hands the run to its checkpoint policy (members/checkpoints.py), which saves and resumes it.

Speed on a GPU comes from: bf16 autocast (fp16 + GradScaler on older GPUs), channels_last,
cudnn.benchmark, batches that are already uint8 on the device (see members/feeding.py)
and augmented there (members/augment.py), loss values read back only every
`tracking.wandb.log_every` batches, and optionally `train.compile`.

`train.amp` and `train.channels_last` choose the first two explicitly (`auto` is the GPU-only
default above), so the CPU test suite runs the very lines a GPU runs. When a training step runs
out of memory, each batch is split into micro-batches of half the size whose gradients add up
to the same optimizer step, so the epoch order, the schedule and resume stay exactly as planned.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import nn
from tqdm.auto import tqdm

from core.config import MemberConfig
from core.distributed import DistContext
from core.errors import UserError
from members.checkpoints import Checkpoints
from members.early_stopping import EarlyStopping
from members.interrupts import StopRequest, TrainingStopped
from members.losses import split_targets
from members.optim import describe_groups, head_params, lr_factor, make_optimizer, parameter_groups
from members.resume import TrainingState
from members.run_state import EpochOutputs, RunState, TrainResult
from members.targets import Targets
from modeling.models import head_names
from modeling.preprocess import Normalize, autocast_dtype, free_device_memory, is_out_of_memory, use_channels_last
from modeling.timm_lib import ModelEmaV3

log = logging.getLogger("members")
__all__ = ["Trainer", "Network", "RunContext", "Hooks", "TrainResult", "EpochOutputs",
           "classification_metrics", "lr_factor", "make_optimizer", "parameter_groups"]


def classification_metrics(labels: np.ndarray, probs: np.ndarray, loss: float, prefix: str = "val_") -> dict:
    preds = probs.argmax(1)
    n_classes = probs.shape[1]
    return {
        f"{prefix}f1_macro": float(f1_score(labels, preds, average="macro", labels=range(n_classes), zero_division=0)),
        f"{prefix}acc": float(accuracy_score(labels, preds)),
        f"{prefix}loss": float(loss),
    }


def ema_key(monitor: str) -> str:
    return "val_ema_" + monitor.removeprefix("val_")


def _ignore(metrics: dict) -> None:
    pass


@dataclass
class Network:
    """The model and what every batch passes through on its way in."""
    model: nn.Module
    normalize: Normalize
    augment: nn.Module | None = None  # on-device batch augmentation (members/augment.py); training batches only


@dataclass
class RunContext:
    """Where the run trains: the device, the DDP process group, and (smoke runs) how many batches an epoch has."""
    device: torch.device
    dist: DistContext | None = None   # None: one process
    max_batches: int | None = None


@dataclass
class Hooks:
    """What the trainer tells the outside world (metrics per epoch, per logged batch) and how it is asked to stop."""
    on_epoch: Callable[[dict], None] = _ignore
    on_batch: Callable[[dict], None] = _ignore
    stop: StopRequest = field(default_factory=StopRequest)


class Trainer:
    def __init__(self, config: MemberConfig, network: Network, context: RunContext, targets: Targets | None = None,
                 checkpoints: Checkpoints | None = None, hooks: Hooks | None = None):
        """Without `targets` the loss sees labels (members/targets.py); without `checkpoints` nothing is saved."""
        self.cfg = config
        self.device = device = context.device
        self.dist = context.dist or DistContext(device)
        checkpoints = checkpoints or Checkpoints.of(config)
        self.checkpoints = checkpoints if self.dist.is_main else replace(checkpoints, run_dir=None)  # rank 0 writes
        self.net = network.model.to(device)
        self.channels_last = use_channels_last(device, config.train.channels_last)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = not config.train.deterministic
        self.ema = ModelEmaV3(self.net, decay=config.train.ema, use_warmup=True) if config.train.ema else None
        self.train_module = self.dist.wrap(self.net)
        if config.train.compile:
            self.train_module = torch.compile(self.train_module)
        self.normalize = network.normalize.to(device)
        self.batch_augment = network.augment.to(device) if network.augment is not None else None
        self.max_batches = context.max_batches
        self.hooks = hooks or Hooks()
        self.amp_dtype = autocast_dtype(device, config.train.amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.micro_batch: int | None = None  # rows per forward pass once memory ran out; None = whole batches
        # Validation's own size: rank 0 alone validates, so its halving must not change how rank 0 trains.
        self.eval_micro_batch: int | None = None
        self.targets = targets or Targets()
        self.criterion = self.targets.criterion(config).to(device)
        self.log_every = max(1, config.tracking.wandb.log_every)
        head = head_params(self.net, needed=config.train.freeze_backbone_epochs > 0)
        self.backbone_params = [p for n, p in self.net.named_parameters() if n not in head]
        self.frozen = False

    # --- one batch --------------------------------------------------------------------------

    def _inputs(self, images: torch.Tensor) -> torch.Tensor:
        x = self.normalize(images.to(self.device, non_blocking=True))
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _limit(self, feed) -> int:
        return len(feed) if self.max_batches is None else min(len(feed), self.max_batches)

    def _step(self, run: RunState, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        if self.batch_augment is not None:
            images = self.batch_augment(images)  # outside the retry: a retry must not draw new crops
        targets = self.targets.for_batch(images, targets)
        while True:
            try:
                loss = self._gradients(run, images, targets)
                break
            except Exception as err:
                if not is_out_of_memory(err):
                    raise
            # Outside the except block, so the failed attempt's tensors can actually be freed.
            run.optimizer.zero_grad(set_to_none=True)  # a backward that failed half-way left partial gradients
            self._halve_after_oom(len(targets), training=True)
        if self.frozen:  # under DDP every parameter still gets its all-reduced grad; dropping it skips the update
            for p in self.backbone_params:
                p.grad = None
        if self.cfg.train.grad_clip:
            self.scaler.unscale_(run.optimizer)
            nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.train.grad_clip)
        self.scaler.step(run.optimizer)
        self.scaler.update()
        run.scheduler.step()
        run.global_step += 1
        if self.ema is not None:
            self.ema.update(self.net, step=run.global_step)
        return loss.detach()

    def _gradients(self, run: RunState, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Forward and backward of one batch, whole or (after an out-of-memory error) in micro-batches."""
        run.optimizer.zero_grad(set_to_none=True)
        if self.micro_batch is None or self.micro_batch >= len(targets):
            with self._autocast():
                loss = self.criterion(self.train_module(self._inputs(images)), targets)
            self.scaler.scale(loss).backward()
            return loss
        # Each micro-batch's mean loss weighted by its share of the batch: the gradients add up to the
        # whole batch's (exactly for a per-sample loss; batch norm and soft_f1 see smaller batches).
        total = torch.zeros((), device=self.device)
        for lo in range(0, len(targets), self.micro_batch):
            part_images, part_targets = images[lo:lo + self.micro_batch], targets[lo:lo + self.micro_batch]
            with self._autocast():
                loss = self.criterion(self.train_module(self._inputs(part_images)), part_targets)
            share = loss * (len(part_targets) / len(targets))
            self.scaler.scale(share).backward()
            total += share.detach().float()
        return total

    def _halve_after_oom(self, batch_rows: int, training: bool) -> None:
        free_device_memory(self.device)
        size = self.micro_batch if training else self._eval_rows()
        current = size if size is not None and size < batch_rows else batch_rows
        if self.dist.enabled and training:
            # One rank splitting its batch would run more backward passes (gradient all-reduces) than
            # the others, and they would wait for each other forever.
            raise UserError(f"member '{self.cfg.name}': out of memory with {current} images per step on rank "
                            f"{self.dist.rank}; lower train.batch_size (each of the {self.dist.world} processes "
                            "holds a whole batch)")
        if current <= 1:
            raise UserError(f"member '{self.cfg.name}': out of memory with a micro-batch of one image; lower "
                            "data.image_size, use a smaller model or another device")
        if training:
            self.micro_batch = current // 2
        else:
            self.eval_micro_batch = current // 2
        log.warning("out of memory with %d images per forward pass; each batch of %d now runs as micro-batches "
                    "of %d (the same optimizer step, the same epoch order)", current, batch_rows, current // 2)

    # --- one epoch --------------------------------------------------------------------------

    def set_frozen(self, frozen: bool) -> None:
        """train.freeze_backbone_epochs: only the head learns; the backbone's weights and norm statistics stay."""
        if frozen != self.frozen:
            log.info("%s the backbone (train.freeze_backbone_epochs=%d)", "freezing" if frozen else "unfreezing",
                     self.cfg.train.freeze_backbone_epochs)
        self.frozen = frozen
        if not self.dist.enabled:  # DDP expects the same parameters to need grads in every step
            for p in self.backbone_params:
                p.requires_grad_(not frozen)

    def _freeze_norms(self) -> None:
        head = tuple(f"{n}." for n in head_names(self.net))
        for name, module in self.net.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and not f"{name}.".startswith(head):
                module.eval()

    def train_epoch(self, run: RunState, feed, epoch: int, skip: int = 0,
                    carried: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
        """Train from batch `skip` to the end of the epoch; return (mean train loss, images per second)."""
        self.train_module.train()
        if self.frozen:
            self._freeze_norms()
        steps = self._limit(feed)
        total = torch.tensor(carried[0], dtype=torch.float64, device=self.device)
        seen = carried[1]
        batches = feed.epoch(epoch, skip)
        bar = tqdm(total=steps, initial=skip, desc=f"{self.cfg.name} epoch {epoch}", unit="batch", leave=False,
                   disable=None if self.dist.is_main else True)
        started, images_done = time.perf_counter(), 0
        for step in range(skip, steps):
            # Checked before the batch is drawn, so a resumed run draws exactly what this one would have.
            if self.dist.any(bool(self.hooks.stop)):
                bar.close()
                self.checkpoints.save_last(run, epochs_done=epoch - 1, step_in_epoch=step, partial=(float(total), seen))
                raise self.hooks.stop.stopped(self.checkpoints.run_dir)
            images, labels = next(batches)
            loss = self._step(run, images, labels)
            total += loss * len(labels)
            seen += len(labels)
            images_done += len(labels)
            if self.dist.is_main and run.global_step % self.log_every == 0:
                value = float(loss)  # the only per-batch read-back: a GPU sync every log_every batches
                self.hooks.on_batch({"batch/step": run.global_step, "batch/loss": value,
                               "batch/lr": run.optimizer.param_groups[0]["lr"]})
                bar.set_postfix(loss=f"{value:.4f}")
            bar.update()
        bar.close()
        loss_sum, rows, done = self.dist.sum([float(total), seen, images_done])
        rate = done / max(1e-9, time.perf_counter() - started)
        return loss_sum / max(1.0, rows), rate

    @torch.no_grad()
    def evaluate(self, feed, module: nn.Module | None = None) -> EpochOutputs:
        module = module if module is not None else self.net
        module.eval()
        steps = self._limit(feed)
        logits, labels_all = [], []
        for step, (images, labels) in enumerate(feed.epoch(0)):
            if step >= steps:
                break
            logits.append(self._eval_logits(module, images))
            labels_all.append(split_targets(labels)[0])  # validation scores the true labels only
        stacked = torch.cat(logits).cpu()
        labels_t = torch.cat(labels_all).cpu()
        loss = float(nn.functional.cross_entropy(stacked, labels_t))
        return EpochOutputs(stacked.numpy(), torch.softmax(stacked, 1).numpy(), loss)

    def _eval_logits(self, module: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Float logits of one validation batch; in micro-batches once memory ran out (rank 0 alone
        evaluates, so halving here cannot make ranks disagree)."""
        while True:
            try:
                rows = self._eval_rows() or len(images)
                with self._autocast():
                    parts = [module(self._inputs(images[lo:lo + rows])).float() for lo in range(0, len(images), rows)]
                return parts[0] if len(parts) == 1 else torch.cat(parts)
            except Exception as err:
                if not is_out_of_memory(err):
                    raise
            self._halve_after_oom(len(images), training=False)

    def _eval_rows(self) -> int | None:
        sizes = [s for s in (self.micro_batch, self.eval_micro_batch) if s is not None]
        return min(sizes) if sizes else None

    # --- the end of an epoch and the whole run ---------------------------------------------

    def _epoch_end(self, run: RunState, epoch: int, train_loss: float, rate: float, val_feed,
                   val_labels: np.ndarray) -> bool:
        """Rank 0: validate, checkpoint, log. Returns whether early stopping says stop."""
        es = self.cfg.early_stopping
        outputs = self.evaluate(val_feed)
        labels = val_labels[: len(outputs.probs)]
        metrics = {"epoch": epoch, "train_loss": train_loss, "lr": run.optimizer.param_groups[0]["lr"],
                   "train_img_per_s": rate, **classification_metrics(labels, outputs.probs, outputs.loss)}
        if self.ema is not None:
            ema_out = self.evaluate(val_feed, self.ema.module)
            metrics |= classification_metrics(labels, ema_out.probs, ema_out.loss, prefix="val_ema_")
        if es.monitor not in metrics:
            raise UserError(f"early_stopping.monitor '{es.monitor}' is not a metric ({', '.join(metrics)})")
        run.result.history.append(metrics)
        is_best = run.stopper.step(metrics[es.monitor], epoch)
        ema_best = self.ema is not None and run.ema_stopper.step(metrics.get(ema_key(es.monitor)), epoch)
        self.checkpoints.epoch_end(run, epoch, metrics, outputs, improved=is_best, ema_improved=ema_best)
        ema_note = f"  val_ema_f1_macro {metrics['val_ema_f1_macro']:.4f}" if self.ema is not None else ""
        log.info("epoch %d  train_loss %.4f  val_loss %.4f  val_f1_macro %.4f  val_acc %.4f%s  %.0f img/s%s", epoch,
                 train_loss, metrics["val_loss"], metrics["val_f1_macro"], metrics["val_acc"], ema_note, rate,
                 "  *best*" if is_best else "")
        self.hooks.on_epoch(metrics)
        return run.stopper.should_stop

    def fit(self, train_feed, val_feed, val_labels: np.ndarray, resume: TrainingState | None = None,
            stop_after_epoch: int | None = None) -> TrainResult:
        cfg, es = self.cfg.train, self.cfg.early_stopping
        optimizer = make_optimizer(self.net, cfg)
        if self.dist.is_main:
            log.info(describe_groups(optimizer))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, self._limit(train_feed)))
        stoppers = [EarlyStopping(es.mode, es.patience, es.min_delta) for _ in ("weights", "ema weights")]
        run = RunState(self.net, self.ema, self.scaler, optimizer, scheduler, *stoppers, TrainResult())
        first_epoch, skip, carried = 1, 0, (0.0, 0.0)
        if resume is not None:
            self.checkpoints.restore(run, resume)
            first_epoch, skip, carried = resume.epochs_done + 1, resume.step_in_epoch, tuple(resume.partial_loss)
            if run.stopper.should_stop:  # early stopping had said stop when the run was interrupted: finish it
                first_epoch, run.result.stopped_early = cfg.epochs + 1, True
        for epoch in range(first_epoch, cfg.epochs + 1):
            self.set_frozen(epoch <= cfg.freeze_backbone_epochs)
            train_loss, rate = self.train_epoch(run, train_feed, epoch, skip, carried)
            skip, carried = 0, (0.0, 0.0)
            should_stop = self.dist.is_main and self._epoch_end(run, epoch, train_loss, rate, val_feed, val_labels)
            if self.dist.from_main(should_stop):
                run.result.stopped_early = True
                log.info("early stop: no improvement of %s for %d epochs", es.monitor, run.stopper.bad_epochs)
                break
            if stop_after_epoch is not None and epoch >= stop_after_epoch and epoch < cfg.epochs:
                raise TrainingStopped(f"stopped after epoch {epoch} as asked", 0, self.checkpoints.run_dir)
        if self.dist.is_main and run.result.best_outputs is None:
            raise UserError(f"member '{self.cfg.name}': {es.monitor} was NaN or inf in every epoch "
                            "(training diverged); lower train.lr and try again")
        return run.result

