"""The training loop: epochs of training and validation, early stopping, checkpoints, resumable state.

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from timm.utils import ModelEmaV3
from torch import nn
from tqdm.auto import tqdm

from core.config import MemberConfig
from core.distributed import DistContext
from core.errors import UserError
from members.early_stopping import EarlyStopping
from members.interrupts import StopRequest, TrainingStopped
from members.losses import split_targets
from members.optim import describe_groups, head_params, lr_factor, make_optimizer, parameter_groups
from members.resume import TrainingState, restore_rng, save_state
from members.targets import Targets
from modeling.checkpoint import save_weights
from modeling.models import head_names
from modeling.preprocess import Normalize, autocast_dtype, free_device_memory, is_out_of_memory, use_channels_last

log = logging.getLogger("members")
__all__ = ["Trainer", "TrainResult", "EpochOutputs",
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
class _Run:
    """What changes while training; together with the weights it is the resumable state."""
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    stopper: EarlyStopping
    ema_stopper: EarlyStopping
    result: TrainResult
    global_step: int = 0


class Trainer:
    def __init__(self, config: MemberConfig, model: nn.Module, normalize: Normalize, run_dir: Path | None,
                 device: torch.device, max_batches: int | None = None,
                 on_epoch: Callable[[dict], None] | None = None, on_batch: Callable[[dict], None] | None = None,
                 dist: DistContext | None = None, stop: StopRequest | None = None,
                 class_weights: np.ndarray | None = None, batch_augment: nn.Module | None = None,
                 wandb_run: str | None = None, targets: Targets | None = None):
        self.cfg = config
        self.device = device
        self.dist = dist or DistContext(device)
        self.run_dir = run_dir if self.dist.is_main else None  # only rank 0 writes files
        self.net = model.to(device)
        self.channels_last = use_channels_last(device, config.train.channels_last)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = not config.train.deterministic
        self.ema = ModelEmaV3(self.net, decay=config.train.ema, use_warmup=True) if config.train.ema else None
        self.train_module = self.dist.wrap(self.net)
        if config.train.compile:
            self.train_module = torch.compile(self.train_module)
        self.normalize = normalize.to(device)
        self.batch_augment = batch_augment.to(device) if batch_augment is not None else None
        self.max_batches = max_batches
        self.on_epoch = on_epoch or (lambda metrics: None)
        self.on_batch = on_batch or (lambda metrics: None)
        self.stop = stop if stop is not None else StopRequest()
        self.wandb_run = wandb_run
        self.amp_dtype = autocast_dtype(device, config.train.amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.micro_batch: int | None = None  # rows per forward pass once memory ran out; None = whole batches
        # Validation's own size: rank 0 alone validates, so its halving must not change how rank 0 trains.
        self.eval_micro_batch: int | None = None
        # What the loss compares with (members/targets.py): labels, teacher probabilities, or pseudo-labelled rows.
        self.targets = targets or Targets()
        self.criterion = self.targets.criterion(config, class_weights).to(device)
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

    def _step(self, run: _Run, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
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

    def _gradients(self, run: _Run, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
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

    def train_epoch(self, run: _Run, feed, epoch: int, skip: int = 0,
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
            if self.dist.any(bool(self.stop)):
                bar.close()
                self._save_last(run, epochs_done=epoch - 1, step_in_epoch=step, partial=(float(total), seen))
                raise self.stop.stopped(self.run_dir)
            images, labels = next(batches)
            loss = self._step(run, images, labels)
            total += loss * len(labels)
            seen += len(labels)
            images_done += len(labels)
            if self.dist.is_main and run.global_step % self.log_every == 0:
                value = float(loss)  # the only per-batch read-back: a GPU sync every log_every batches
                self.on_batch({"batch/step": run.global_step, "batch/loss": value,
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

    # --- checkpoints and resumable state -----------------------------------------------------

    def _save_last(self, run: _Run, epochs_done: int, step_in_epoch: int, partial: tuple[float, float]) -> None:
        if self.run_dir is None:
            return
        meta = {"epoch": epochs_done, "step_in_epoch": step_in_epoch, "arch": self.cfg.model.arch}
        weights = {"last.safetensors": save_weights(self.net, self.run_dir / "last.safetensors", meta)}
        if self.ema is not None:
            weights["last_ema.safetensors"] = save_weights(self.ema.module, self.run_dir / "last_ema.safetensors",
                                                           meta | {"ema_decay": self.cfg.train.ema})
        res = run.result
        best_logits = torch.from_numpy(res.best_outputs.logits) if res.best_outputs is not None else None
        save_state(self.run_dir, TrainingState(
            epochs_done=epochs_done, step_in_epoch=step_in_epoch, global_step=run.global_step,
            partial_loss=[float(partial[0]), float(partial[1])], optimizer=run.optimizer.state_dict(),
            scheduler=_plain(run.scheduler.state_dict()), scaler=self.scaler.state_dict(),
            stopper=run.stopper.state(), ema_stopper=run.ema_stopper.state(), history=res.history,
            best=res.best, best_epoch=res.best_epoch,
            best_loss=res.best_outputs.loss if res.best_outputs is not None else None, best_logits=best_logits,
            ema_best=res.ema_best, ema_best_epoch=res.ema_best_epoch, wandb_run=self.wandb_run, weights=weights))

    def _restore(self, run: _Run, state: TrainingState) -> None:
        self.net.load_state_dict(state.model_state, strict=True)
        if self.ema is not None and state.ema_state is not None:
            self.ema.module.load_state_dict(state.ema_state, strict=True)
        run.optimizer.load_state_dict(state.optimizer)
        run.scheduler.load_state_dict(state.scheduler)
        if state.scaler:  # empty when saved without fp16 (a CPU, or bf16): a resumed fp16 run starts a fresh scale
            self.scaler.load_state_dict(state.scaler)
        run.stopper.load(state.stopper)
        if state.ema_stopper:
            run.ema_stopper.load(state.ema_stopper)
        run.global_step = state.global_step
        res = run.result
        res.history, res.best, res.best_epoch = list(state.history), dict(state.best), state.best_epoch
        res.ema_best, res.ema_best_epoch = dict(state.ema_best), state.ema_best_epoch
        if state.best_logits is not None:
            logits = state.best_logits.float()
            res.best_outputs = EpochOutputs(logits.numpy(), torch.softmax(logits, 1).numpy(), state.best_loss)
        # Last, so nothing above draws from the generators the interrupted run had reached.
        restore_rng(state.rng["tensors"], state.rng["plain"])
        log.info("resumed after epoch %d, batch %d (step %d)", state.epochs_done, state.step_in_epoch,
                 state.global_step)

    def _epoch_end(self, run: _Run, epoch: int, train_loss: float, rate: float, val_feed,
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
        res = run.result
        res.history.append(metrics)
        is_best = run.stopper.step(metrics[es.monitor], epoch)
        ema_best = self.ema is not None and run.ema_stopper.step(metrics.get(ema_key(es.monitor)), epoch)
        meta = {"epoch": epoch, "arch": self.cfg.model.arch, "metrics": metrics}
        if is_best:
            res.best, res.best_epoch, res.best_outputs = metrics, epoch, outputs
            if self.run_dir is not None:
                save_weights(self.net, self.run_dir / "best.safetensors", meta)
        if ema_best:
            res.ema_best, res.ema_best_epoch = metrics, epoch
            if self.run_dir is not None:
                save_weights(self.ema.module, self.run_dir / "best_ema.safetensors",
                             meta | {"ema_decay": self.cfg.train.ema})
        self._save_last(run, epochs_done=epoch, step_in_epoch=0, partial=(0.0, 0.0))
        ema_note = f"  val_ema_f1_macro {metrics['val_ema_f1_macro']:.4f}" if self.ema is not None else ""
        log.info("epoch %d  train_loss %.4f  val_loss %.4f  val_f1_macro %.4f  val_acc %.4f%s  %.0f img/s%s", epoch,
                 train_loss, metrics["val_loss"], metrics["val_f1_macro"], metrics["val_acc"], ema_note, rate,
                 "  *best*" if is_best else "")
        self.on_epoch(metrics)
        return run.stopper.should_stop

    # --- the whole run -----------------------------------------------------------------------

    def fit(self, train_feed, val_feed, val_labels: np.ndarray, resume: TrainingState | None = None,
            stop_after_epoch: int | None = None) -> TrainResult:
        cfg, es = self.cfg.train, self.cfg.early_stopping
        optimizer = make_optimizer(self.net, cfg)
        if self.dist.is_main:
            log.info(describe_groups(optimizer))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, self._limit(train_feed)))
        run = _Run(optimizer, scheduler, EarlyStopping(es.mode, es.patience, es.min_delta),
                   EarlyStopping(es.mode, es.patience, es.min_delta), TrainResult())
        first_epoch, skip, carried = 1, 0, (0.0, 0.0)
        if resume is not None:
            self._restore(run, resume)
            first_epoch, skip, carried = resume.epochs_done + 1, resume.step_in_epoch, tuple(resume.partial_loss)
            if run.stopper.should_stop:  # early stopping had said stop when the run was interrupted: finish it
                first_epoch, run.result.stopped_early = cfg.epochs + 1, True
        for epoch in range(first_epoch, cfg.epochs + 1):
            self.set_frozen(epoch <= cfg.freeze_backbone_epochs)
            train_loss, rate = self.train_epoch(run, train_feed, epoch, skip, carried)
            skip, carried = 0, (0.0, 0.0)
            should_stop = self._epoch_end(run, epoch, train_loss, rate, val_feed, val_labels) \
                if self.dist.is_main else False
            if self.dist.from_main(should_stop):
                run.result.stopped_early = True
                log.info("early stop: no improvement of %s for %d epochs", es.monitor, run.stopper.bad_epochs)
                break
            if stop_after_epoch is not None and epoch >= stop_after_epoch and epoch < cfg.epochs:
                raise TrainingStopped(f"stopped after epoch {epoch} as asked", 0, self.run_dir)
        if self.dist.is_main and run.result.best_outputs is None:
            raise UserError(f"member '{self.cfg.name}': {es.monitor} was NaN or inf in every epoch "
                            "(training diverged); lower train.lr and try again")
        return run.result


def _plain(state: dict) -> dict:
    """A scheduler's state minus what JSON cannot hold (LambdaLR keeps None for plain functions)."""
    return {k: v for k, v in state.items() if isinstance(v, (int, float, str, bool, list, dict, type(None)))}
