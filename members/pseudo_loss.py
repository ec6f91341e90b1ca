"""The loss of a member that also trains on pseudo-labelled test images (data.pseudo / distill.unlabeled).

Each row's target travels as float32 [2 + C]: the class index, a pseudo flag (0 labelled, 1
pseudo), then the teacher's probabilities (used only by pseudo rows in soft mode). One tensor
per row is what every feed already moves, and validation reads column 0 as the true label
(`members.losses.split_targets`), so pseudo rows need no second path to the loss.

loss = (sum over labelled rows of hard + weight * sum over pseudo rows of their loss) / rows,
so with weight 1 and hard labels it is the member's usual loss over all rows of the batch.
A pseudo row's loss is the usual hard loss on the teacher's class, or in soft mode the
existing distillation loss on the teacher's probabilities (distill.temperature, distill.alpha).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from members.losses import DistillationLoss


def pack_pseudo_targets(labels: np.ndarray, is_pseudo: np.ndarray, teacher: np.ndarray) -> np.ndarray:
    """float32 [N, 2 + C]: label, pseudo flag, teacher probabilities (labelled rows carry zeros there)."""
    return np.concatenate([np.asarray(labels, np.float32)[:, None], np.asarray(is_pseudo, np.float32)[:, None],
                           np.asarray(teacher, np.float32)], axis=1)


class PseudoLabelLoss(nn.Module):
    def __init__(self, hard: nn.Module, weight: float, distill=None):
        super().__init__()
        self.hard = hard
        self.weight = float(weight)
        # soft mode: the distillation loss on the teacher's probabilities, with the member's own hard loss inside
        self.soft = DistillationLoss(hard, distill.temperature, distill.alpha) if distill is not None else None

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        labels, flag, teacher = targets[:, 0].long(), targets[:, 1] > 0.5, targets[:, 2:]
        total = logits.new_zeros((), dtype=torch.float32)
        real = ~flag
        if real.any():
            total = total + self.hard(logits[real], labels[real]) * real.sum()
        if flag.any():
            if self.soft is None:
                part = self.hard(logits[flag], labels[flag])
            else:
                part = self.soft(logits[flag], torch.cat([targets[flag, :1], teacher[flag]], dim=1))
            total = total + self.weight * part * flag.sum()
        return total / len(targets)
