"""Confident learning on out-of-fold probabilities: which training labels are probably wrong.

The method is cleanlab's `find_label_issues(filter_by="prune_by_noise_rate",
return_indices_ranked_by="self_confidence")` (Northcutt et al., JAIR 2021):
- **filter_by = prune_by_noise_rate**, cleanlab's default: the confident joint estimates
  how many images of each given class really belong to each other class, and that many
  are removed from each off-diagonal cell, the ones with the largest margin
  p(other) − p(given) first. The count per class comes from the data's own estimated
  noise, not from a threshold we pick, and the paper found it the most precise of the
  single filters on noisy benchmarks (`both` is stricter and misses more; `predicted_neq_given`
  flags every mistake of the models, which on a hard task is mostly model error).
- **rank_by = self_confidence**: the suspects are ordered by p(given label), lowest first:
  the number the review sheet shows, easy to read ("the models gave this label 2 %").
The probabilities must be out of fold (a model scoring an image it trained on is
confident in whatever label it memorised), which is why audits take fold groups only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from cleanlab.count import compute_confident_joint
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

FILTER_BY = "prune_by_noise_rate"
RANK_BY = "self_confidence"
METHOD = f"cleanlab.filter.find_label_issues(filter_by='{FILTER_BY}', return_indices_ranked_by='{RANK_BY}')"


@dataclass
class Suspects:
    rows: np.ndarray             # row indices of the likely label errors, worst (lowest self-confidence) first
    self_confidence: np.ndarray  # [N] p(given label) of every row
    suggested: np.ndarray        # [N] argmax of the probabilities: the label the models would give
    confident_joint: np.ndarray  # [C, C] calibrated counts: given class (rows) x likely true class (columns)
    noise: pd.DataFrame          # per class: given, estimated errors, estimated noise rate, suspects found


def find_suspects(labels: np.ndarray, probs: np.ndarray, classes: list[str]) -> Suspects:
    """Rank the likely label errors among `labels` from out-of-fold `probs` [N, C] (rows sum to 1)."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(1, keepdims=True)
    missing = sorted(set(range(len(classes))) - set(labels.tolist()))
    if missing:
        raise ValueError(f"class '{classes[missing[0]]}' has no training row; confident learning needs every class")
    # n_jobs=1: cleanlab's multiprocessing gains nothing on these sizes and forks the whole process.
    rows = find_label_issues(labels, probs, filter_by=FILTER_BY, return_indices_ranked_by=RANK_BY, n_jobs=1)
    joint = compute_confident_joint(labels, probs, calibrate=True)
    scores = get_label_quality_scores(labels, probs, method=RANK_BY)
    return Suspects(np.asarray(rows, dtype=np.int64), scores, probs.argmax(1), joint,
                    noise_table(labels, joint, rows, classes))


def noise_table(labels: np.ndarray, joint: np.ndarray, rows: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Per given class: its size, the confident joint's off-diagonal count and share (the estimated noise rate)."""
    given = np.bincount(labels, minlength=len(classes))
    off = joint.sum(1) - np.diag(joint)
    flagged = np.bincount(labels[rows], minlength=len(classes)) if len(rows) else np.zeros(len(classes), int)
    return pd.DataFrame({"class": classes, "given": given, "estimated_errors": np.rint(off).astype(int),
                         "noise_rate": off / np.maximum(joint.sum(1), 1), "suspects": flagged})
