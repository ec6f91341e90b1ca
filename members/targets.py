"""What a training batch's loss compares the model with: the seam for new kinds of targets.

Every feed moves one target tensor per batch beside the images. Plain training carries class
indices; a distillation student carries `[label, teacher probabilities...]` rows
(members.losses.pack_targets), read by the distillation loss. A `Targets` strategy says which
of these the trainer trains on and may rewrite a batch's targets once it is augmented (the
online teacher predicts the very crops the student sees). A new source of targets (pseudo-labels,
say) is one more subclass here, handed to `Trainer(targets=...)`. Each also carries the class
weights (train.class_balance=weights) its loss applies.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from members.losses import build_loss, split_targets
from members.pseudo_loss import PseudoLabelLoss


class Targets:
    """Class labels only: the batch's targets go to the member's loss unchanged."""
    soft = False  # True: targets carry teacher probabilities, so the loss is wrapped in distillation

    def __init__(self, class_weights: np.ndarray | None = None):
        self.class_weights = class_weights

    def for_batch(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The targets the loss sees for these (already augmented, on-device) images."""
        return targets

    def criterion(self, config) -> torch.nn.Module:
        """The member's loss for these targets (wrapped in distillation when they carry teacher probabilities)."""
        return build_loss(config.train, self.class_weights, config.distill if self.soft else None)


class CachedTeacherTargets(Targets):
    """Teacher probabilities computed once before training, packed beside each label by the feed."""
    soft = True


class OnlineTeacherTargets(Targets):
    """distill.online: the teacher predicts each augmented batch; its probabilities replace the cached ones."""
    soft = True

    def __init__(self, teacher: Callable[[torch.Tensor], torch.Tensor], class_weights: np.ndarray | None = None):
        super().__init__(class_weights)
        self.teacher = teacher

    def for_batch(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        labels, _ = split_targets(targets)
        with torch.no_grad():
            soft = self.teacher(images).to(device=images.device, dtype=torch.float32)
        return torch.cat([labels.float()[:, None], soft], dim=1)  # the packed form the loss reads


class PseudoTargets(Targets):
    """Labelled rows beside pseudo-labelled test rows: each target is [label, pseudo flag, teacher
    probabilities] (members/pseudo_loss.py); pseudo rows learn the teacher's class (mode `hard`) or its
    probabilities through the distillation loss (mode `soft`), weighted by pseudo.weight."""

    def __init__(self, mode: str, class_weights: np.ndarray | None = None):
        super().__init__(class_weights)
        self.mode = mode

    def criterion(self, config) -> torch.nn.Module:
        return PseudoLabelLoss(build_loss(config.train, self.class_weights), config.pseudo.weight,
                               config.distill if self.mode == "soft" else None)
