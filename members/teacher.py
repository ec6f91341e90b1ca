"""A distillation teacher's probabilities by row id, and their placement on a student's training rows."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from core.errors import UserError

log = logging.getLogger("members")


@dataclass
class TeacherTargets:
    """A distillation teacher's probabilities by row id, from the prediction cache (see jobs/distill.py)."""
    ids: np.ndarray         # [N] str
    probs: np.ndarray       # [N, C] float32, what the recipe's vote gives on each row
    in_sample: np.ndarray   # [N] bool: the teacher's members were trained on the row
    provenance: dict        # the registry entry's `distilled_from`
    online: Callable[[torch.Tensor], torch.Tensor] | None = None  # distill.online: the teacher on each augmented batch

    def for_pool(self, pool_ids: list[str], train_idx: np.ndarray, classes: list[str]) -> np.ndarray:
        """float32 [pool rows, C]: the teacher's targets on every training row (others stay uniform, unused)."""
        if self.probs.shape[1] != len(classes):
            raise UserError(f"the teacher predicts {self.probs.shape[1]} classes but the student's data has "
                            f"{len(classes)}")
        position = pd.Series(np.arange(len(self.ids)), index=[str(i) for i in self.ids])
        wanted = [pool_ids[i] for i in train_idx]
        found = position.reindex(wanted)
        if found.isna().any():
            missing = wanted[int(np.flatnonzero(found.isna().to_numpy())[0])]
            raise UserError(f"student training row '{missing}' has no teacher prediction (the recipe's members "
                            f"predicted {len(self.ids)} other rows): train the student on the members' data and split")
        rows = found.to_numpy().astype(np.int64)
        out = np.full((len(pool_ids), len(classes)), 1.0 / len(classes), np.float32)
        out[train_idx] = self.probs[rows]
        inside = int(self.in_sample[rows].sum())
        log.info("teacher targets for %d training rows: %d in-sample (the teacher's members trained on them, so they "
                 "are more confident than on unseen rows), %d out-of-sample", len(rows), inside, len(rows) - inside)
        return out
