"""Training losses chosen by `train.loss`, with class weights from `train.class_balance: weights`."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch import nn
from torch.nn import functional as F

from core.errors import UserError
from core.extensions import LOSSES


def balanced_class_weights(labels: np.ndarray, num_classes: int, classes: list[str] | None = None) -> np.ndarray:
    """sklearn's 'balanced' weights, n / (C * count_c); a class without training rows cannot be weighted."""
    counts = np.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        missing = int(np.flatnonzero(counts == 0)[0])
        name = classes[missing] if classes else str(missing)
        raise UserError(f"class '{name}' has no training images, so train.class_balance cannot balance it; "
                        "check the data or use train.class_balance=none")
    return compute_class_weight("balanced", classes=np.arange(num_classes), y=labels).astype(np.float32)


def _smoothed_targets(targets: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    # Same convention as nn.CrossEntropyLoss: (1 - s) on the label plus s / C spread over every class.
    one_hot = F.one_hot(targets, num_classes).float()
    return one_hot * (1.0 - smoothing) + smoothing / num_classes


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p)^gamma per class term.

    With gamma = 0 it equals nn.CrossEntropyLoss with the same weights and label smoothing,
    including its weighted mean (divided by the summed weight of each row's label).
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.gamma = gamma
        self.smoothing = label_smoothing
        self.register_buffer("weight", weight if weight is not None else None)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1)
        q = _smoothed_targets(targets, logits.shape[1], self.smoothing)
        terms = -q * (1.0 - log_p.exp()).pow(self.gamma) * log_p
        if self.weight is None:
            return terms.sum(1).mean()
        per_row = (terms * self.weight).sum(1)
        return per_row.sum() / self.weight[targets].sum()


class SoftF1Loss(nn.Module):
    """1 - macro F1 computed on probabilities, so the metric the competition scores is what gets optimised.

    Counts are soft (sums of probabilities over the batch); classes absent from a batch
    and never predicted contribute nothing, as in sklearn's zero_division handling.
    """

    def __init__(self, weight: torch.Tensor | None = None, label_smoothing: float = 0.0, eps: float = 1e-7):
        super().__init__()
        self.smoothing = label_smoothing
        self.eps = eps
        self.register_buffer("weight", weight if weight is not None else None)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        probs = F.softmax(logits.float(), dim=1)
        q = _smoothed_targets(targets, logits.shape[1], self.smoothing)
        tp = (probs * q).sum(0)
        fp = (probs * (1 - q)).sum(0)
        fn = ((1 - probs) * q).sum(0)
        f1 = 2 * tp / (2 * tp + fp + fn + self.eps)
        present = (q.sum(0) + probs.sum(0)) > self.eps
        weight = self.weight if self.weight is not None else torch.ones_like(f1)
        weight = weight * present
        return 1.0 - (f1 * weight).sum() / weight.sum().clamp_min(self.eps)


# Each loss is built from the train config and the class weights (or None); registering one here is all a
# new loss needs: the config check and the error messages read LOSSES.
@LOSSES.register("ce", "cross-entropy with train.label_smoothing")
def _cross_entropy(train_cfg, weight: torch.Tensor | None) -> nn.Module:
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=train_cfg.label_smoothing)


@LOSSES.register("focal", "focal loss, gamma = train.focal_gamma")
def _focal(train_cfg, weight: torch.Tensor | None) -> nn.Module:
    return FocalLoss(train_cfg.focal_gamma, weight, train_cfg.label_smoothing)


@LOSSES.register("soft_f1", "1 - soft macro F1 over the batch")
def _soft_f1(train_cfg, weight: torch.Tensor | None) -> nn.Module:
    return SoftF1Loss(weight, train_cfg.label_smoothing)


def build_loss(train_cfg, class_weights: np.ndarray | None, distill=None) -> nn.Module:
    """The member's loss; with `distill` (a DistillConfig) it is wrapped in the distillation loss."""
    weight = torch.as_tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
    hard = LOSSES.get(train_cfg.loss)(train_cfg, weight)
    return hard if distill is None else DistillationLoss(hard, distill.temperature, distill.alpha)


# --- distillation: teacher probabilities travel with the labels -------------------------------------------

def pack_targets(labels: np.ndarray, teacher: np.ndarray) -> np.ndarray:
    """float32 [N, 1 + C]: column 0 the class index, then the teacher's probabilities.

    One tensor per row is what every feed already moves (host, resident, side stream, DataLoader
    workers, DDP shards), so the teacher's targets need no second index path to reach the loss."""
    return np.concatenate([np.asarray(labels, np.float32)[:, None], np.asarray(teacher, np.float32)], axis=1)


def split_targets(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(class indices, teacher probabilities or None) from what a batch carries."""
    if targets.dim() == 1:
        return targets, None
    return targets[:, 0].long(), targets[:, 1:]


class DistillationLoss(nn.Module):
    """alpha * KL(teacher_T || student_T) * T^2 + (1 - alpha) * hard(labels) (Hinton et al. 2015).

    The teacher's probabilities are softened like logits: softmax(log p / T). T^2 keeps the
    gradient of the soft term on the scale of the hard one whatever T is. `hard` is the
    member's usual loss (cross-entropy, focal or soft F1, with its class weights and smoothing).
    """

    def __init__(self, hard: nn.Module, temperature: float, alpha: float):
        super().__init__()
        self.hard = hard
        self.temperature = float(temperature)
        self.alpha = float(alpha)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        labels, teacher = split_targets(targets)
        hard = self.hard(logits, labels)
        if teacher is None or self.alpha == 0.0:
            return hard
        t = self.temperature
        student = F.log_softmax(logits.float() / t, dim=1)
        # A hard-vote teacher gives exact zeros; clamping keeps log finite and leaves those classes at ~0.
        soft_teacher = F.softmax(teacher.float().clamp_min(1e-12).log() / t, dim=1)
        kl = F.kl_div(student, soft_teacher, reduction="batchmean") * (t * t)
        return self.alpha * kl + (1.0 - self.alpha) * hard
