"""The training loop: one epoch of training, one of validation, early stopping, checkpoints."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import nn
from tqdm.auto import tqdm

from core.errors import UserError
from members.checkpoint import save_weights
from members.config import MemberConfig
from members.early_stopping import EarlyStopping

log = logging.getLogger("members")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU has it, fp16 (with a GradScaler) on older GPUs, fp32 on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class Normalize(nn.Module):
    """uint8 NCHW batch → normalised float, done on the device so workers ship bytes."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * 255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def make_optimizer(model: nn.Module, cfg) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay, nesterov=True)
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def classification_metrics(labels: np.ndarray, probs: np.ndarray, loss: float) -> dict:
    preds = probs.argmax(1)
    n_classes = probs.shape[1]
    return {
        "val_f1_macro": float(f1_score(labels, preds, average="macro", labels=range(n_classes), zero_division=0)),
        "val_acc": float(accuracy_score(labels, preds)),
        "val_loss": float(loss),
    }


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


class Trainer:
    def __init__(self, config: MemberConfig, model: nn.Module, normalize: Normalize, run_dir: Path,
                 device: torch.device, max_batches: int | None = None,
                 on_epoch: Callable[[dict], None] | None = None):
        self.cfg = config
        self.device = device
        self.model = model.to(device)
        if device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True
        self.normalize = normalize.to(device)
        self.run_dir = run_dir
        self.max_batches = max_batches
        self.on_epoch = on_epoch or (lambda metrics: None)
        self.amp_dtype = autocast_dtype(device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.train.label_smoothing)

    def _inputs(self, images: torch.Tensor) -> torch.Tensor:
        x = self.normalize(images.to(self.device, non_blocking=True))
        return x.contiguous(memory_format=torch.channels_last) if self.device.type == "cuda" else x

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _limit(self, loader) -> int:
        return len(loader) if self.max_batches is None else min(len(loader), self.max_batches)

    def train_epoch(self, loader, optimizer, scheduler, epoch: int) -> float:
        self.model.train()
        total, seen = 0.0, 0
        steps = self._limit(loader)
        bar = tqdm(loader, total=steps, desc=f"{self.cfg.name} epoch {epoch}", unit="batch", leave=False)
        for step, (images, labels) in enumerate(bar):
            if step >= steps:
                break
            labels = labels.to(self.device, non_blocking=True)
            with self._autocast():
                loss = self.criterion(self.model(self._inputs(images)), labels)
            optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
            scheduler.step()
            total += float(loss.detach()) * len(labels)
            seen += len(labels)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        bar.close()
        return total / max(1, seen)

    @torch.no_grad()
    def evaluate(self, loader) -> EpochOutputs:
        self.model.eval()
        steps = self._limit(loader)
        logits, labels_all = [], []
        for step, (images, labels) in enumerate(loader):
            if step >= steps:
                break
            with self._autocast():
                out = self.model(self._inputs(images))
            logits.append(out.float().cpu())
            labels_all.append(labels)
        stacked = torch.cat(logits)
        labels_t = torch.cat(labels_all)
        loss = float(nn.functional.cross_entropy(stacked, labels_t))
        return EpochOutputs(stacked.numpy(), torch.softmax(stacked, 1).numpy(), loss)

    def fit(self, train_loader, val_loader, val_labels: np.ndarray) -> TrainResult:
        cfg = self.cfg.train
        optimizer = make_optimizer(self.model, cfg)
        steps_per_epoch = self._limit(train_loader)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(cfg.epochs * steps_per_epoch, cfg.warmup_epochs * steps_per_epoch))
        es_cfg = self.cfg.early_stopping
        stopper = EarlyStopping(es_cfg.mode, es_cfg.patience, es_cfg.min_delta)
        result = TrainResult()
        for epoch in range(1, cfg.epochs + 1):
            train_loss = self.train_epoch(train_loader, optimizer, scheduler, epoch)
            outputs = self.evaluate(val_loader)
            metrics = {"epoch": epoch, "train_loss": train_loss, "lr": optimizer.param_groups[0]["lr"],
                       **classification_metrics(val_labels[: len(outputs.probs)], outputs.probs, outputs.loss)}
            if es_cfg.monitor not in metrics:
                raise ValueError(f"early_stopping.monitor '{es_cfg.monitor}' is not a metric ({', '.join(metrics)})")
            result.history.append(metrics)
            is_best = stopper.step(metrics[es_cfg.monitor], epoch)
            meta = {"epoch": epoch, "arch": self.cfg.model.arch, "metrics": metrics}
            save_weights(self.model, self.run_dir / "last.safetensors", meta)
            if is_best:
                save_weights(self.model, self.run_dir / "best.safetensors", meta)
                result.best, result.best_epoch, result.best_outputs = metrics, epoch, outputs
            log.info("epoch %d  train_loss %.4f  val_loss %.4f  val_f1_macro %.4f  val_acc %.4f%s", epoch,
                     train_loss, metrics["val_loss"], metrics["val_f1_macro"], metrics["val_acc"],
                     "  *best*" if is_best else "")
            self.on_epoch(metrics)
            if stopper.should_stop:
                result.stopped_early = True
                log.info("early stop: no improvement of %s for %d epochs", es_cfg.monitor, stopper.bad_epochs)
                break
        if result.best_outputs is None:
            raise UserError(f"member '{self.cfg.name}': {es_cfg.monitor} was NaN or inf in every epoch "
                            "(training diverged); lower train.lr and try again")
        return result
