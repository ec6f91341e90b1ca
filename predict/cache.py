"""The prediction cache: <root>/<member>/<split>.npz.

Format (documented in the README so predictions made elsewhere can be voted too):
  ids       str   [N]     row ids (val: split ids; test: ImageID in info.csv order)
  probs     f32   [N, C]  class probabilities, rows sum to 1
  logits    f32   [N, C]  log-probabilities (after TTA merging)
  labels    i64   [N]     true labels, -1 where unknown (test)
  classes   str   [C]     class names, in column order
  key       str   []      sha256 of (weights sha256, data fingerprint, TTA, split) — the cache key
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import atomic
from core.errors import UserError
from core.hashing import sha256_text


@dataclass
class Prediction:
    ids: np.ndarray
    probs: np.ndarray
    logits: np.ndarray
    labels: np.ndarray
    classes: list[str]
    key: str


def cache_key(weights_sha256: str, data_fingerprint: str, tta: bool, split: str) -> str:
    return sha256_text(f"{weights_sha256}|{data_fingerprint}|tta={int(tta)}|{split}")


def cache_path(root: Path, member: str, split: str) -> Path:
    return Path(root) / member / f"{split}.npz"


def save(path: Path, pred: Prediction) -> Path:
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=np.asarray(pred.ids, dtype=str), probs=pred.probs.astype(np.float32),
                     logits=pred.logits.astype(np.float32), labels=np.asarray(pred.labels, dtype=np.int64),
                     classes=np.asarray(pred.classes, dtype=str), key=np.asarray(pred.key))
    return path


def load(path: Path) -> Prediction:
    if not path.exists():
        raise UserError(f"no cached predictions at {path}; run scripts/predict first")
    try:
        with np.load(path, allow_pickle=False) as z:
            pred = Prediction(z["ids"], z["probs"], z["logits"], z["labels"], [str(c) for c in z["classes"]],
                              str(z["key"]))
    except (OSError, KeyError, ValueError) as err:
        raise UserError(f"prediction cache {path} is unreadable or lacks a field ({err})") from err
    if pred.probs.ndim != 2 or pred.probs.shape != (len(pred.ids), len(pred.classes)):
        raise UserError(f"prediction cache {path}: probs shape {pred.probs.shape} does not match ids/classes")
    return pred


def load_if_fresh(path: Path, key: str) -> Prediction | None:
    if not path.exists():
        return None
    try:
        pred = load(path)
    except UserError:
        return None  # a broken cache entry is simply recomputed
    return pred if pred.key == key else None
