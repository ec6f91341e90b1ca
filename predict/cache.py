"""The prediction cache: <root>/<member>/<part>.npz, one file per member and part (val, test, train).

Format (the README's "Prediction cache format" is the reference, so predictions made
elsewhere can be imported and voted too):
  ids        str   [N]     row ids (val: the split file's ids in its order; test: ImageID in info.csv order)
  probs      f32   [N, C]  class probabilities, rows sum to 1
  logits     f32   [N, C]  log-probabilities (after TTA merging)
  labels     i64   [N]     true labels, -1 where unknown (test)
  classes    str   [C]     class names, in column order
  key        str   []      sha256 of (weights sha256, data fingerprint, TTA, decoder, part); "imported:<sha256>"
  tta        str   []      TTA views merged: "none", "flip", "flip,shift"
  origin     str   []      "predicted" (by this tool) or "imported"
  reference  str   []      imported only: the registered member whose rows and classes it was checked against
  ms_per_image f64 []      optional: the member's measured inference cost when it predicted these rows (NaN: unknown)
  cost_device  str []      optional: the device it was measured on; cost_batch i64 []: the batch size
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import atomic, files
from core.errors import UserError
from core.hashing import sha256_text
from predict.tta import TTA, parse_tta

MAX_CACHE_BYTES = 16 << 30  # per array: a million rows x 1000 classes of float32 is 4 GB
REQUIRED = ("ids", "probs", "logits", "labels", "classes", "key")
# Image decoders (predict.batches implements them); the one used is part of the cache key.
DECODERS = ("pil", "nvjpeg")
PARTS = ("val", "test")  # the parts a member predicts: its validation rows and the test list


@dataclass
class Prediction:
    ids: np.ndarray
    probs: np.ndarray
    logits: np.ndarray
    labels: np.ndarray
    classes: list[str]
    key: str
    tta: str = "none"
    origin: str = "predicted"
    reference: str = ""
    ms_per_image: float = float("nan")   # measured inference cost per image (forward passes, TTA views included)
    cost_device: str = ""
    cost_batch: int = 0


def cache_key(weights_sha256: str, data_fingerprint: str, tta: TTA | str | bool | None, part: str,
              decoder: str = "pil") -> str:
    return sha256_text(f"{weights_sha256}|{data_fingerprint}|tta={parse_tta(tta).spec}|decoder={decoder}|{part}")


def cache_path(root: Path, member: str, part: str) -> Path:
    return Path(root) / member / f"{part}.npz"


def save(path: Path, pred: Prediction) -> Path:
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=np.asarray(pred.ids, dtype=str), probs=pred.probs.astype(np.float32),
                     logits=pred.logits.astype(np.float32), labels=np.asarray(pred.labels, dtype=np.int64),
                     classes=np.asarray(pred.classes, dtype=str), key=np.asarray(pred.key),
                     tta=np.asarray(pred.tta), origin=np.asarray(pred.origin), reference=np.asarray(pred.reference),
                     ms_per_image=np.asarray(pred.ms_per_image, dtype=np.float64),
                     cost_device=np.asarray(pred.cost_device), cost_batch=np.asarray(pred.cost_batch, dtype=np.int64))
    return path


def _text(z, name: str, default: str) -> str:
    return str(z[name]) if name in z.files else default


def _cost(z) -> tuple[float, str, int]:
    """The measured cost, where the file has one (files written before it was measured, or imported, lack it)."""
    if "ms_per_image" not in z.files:
        return float("nan"), "", 0
    return (float(z["ms_per_image"]), _text(z, "cost_device", ""),
            int(z["cost_batch"]) if "cost_batch" in z.files else 0)


def load(path: Path) -> Prediction:
    path = Path(path)
    if not path.exists():
        raise UserError(f"no cached predictions at {path}; run scripts/predict first")
    # A truncated or damaged file (a zip header and junk) is one line; load_if_fresh then recomputes it.
    files.check_npz(path, "prediction cache", MAX_CACHE_BYTES)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [name for name in REQUIRED if name not in z.files]
            if missing:
                raise UserError(f"prediction cache {path} lacks field '{missing[0]}' "
                                f"(fields: {', '.join(z.files)}); see the README's prediction cache format")
            pred = Prediction(z["ids"], z["probs"], z["logits"], z["labels"], [str(c) for c in z["classes"]],
                              str(z["key"]), _text(z, "tta", "none"), _text(z, "origin", "predicted"),
                              _text(z, "reference", ""), *_cost(z))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise UserError(f"prediction cache {path} is unreadable ({err.__class__.__name__}: {err})") from err
    n, c = len(pred.ids), len(pred.classes)
    if pred.probs.ndim != 2 or pred.probs.shape != (n, c):
        raise UserError(f"prediction cache {path}: probs shape {pred.probs.shape} does not match ids/classes ({n}, {c})")
    if pred.logits.shape != pred.probs.shape or pred.labels.shape != (n,):
        raise UserError(f"prediction cache {path}: logits {pred.logits.shape} or labels {pred.labels.shape} "
                        f"do not match {n} rows × {c} classes")
    _check_values(pred, path)
    return pred


def _check_values(pred: Prediction, path: Path) -> None:
    """Probabilities that are numbers in [0, 1] summing to 1 per row; a file edited or damaged after it was
    written (its key kept) must not reach a vote, where NaN would silently rank or crash."""
    for name in ("probs", "logits"):
        values = getattr(pred, name)
        if not np.issubdtype(values.dtype, np.floating):
            raise UserError(f"prediction cache {path}: {name} must be floating point, not {values.dtype}")
    if not np.issubdtype(pred.labels.dtype, np.integer):
        raise UserError(f"prediction cache {path}: labels must be whole numbers, not {pred.labels.dtype}")
    finite = np.isfinite(pred.probs).all(1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise UserError(f"prediction cache {path}: probs row {row} ('{pred.ids[row]}') is not finite (NaN or inf); "
                        f"delete the file and predict (or import) it again")
    sums = pred.probs.sum(1, dtype=np.float64)
    bad = np.flatnonzero((pred.probs < 0).any(1) | (np.abs(sums - 1) > 1e-3))
    if len(bad):
        row = int(bad[0])
        raise UserError(f"prediction cache {path}: probs row {row} ('{pred.ids[row]}') sums to {sums[row]:.4f} or "
                        f"has a negative value; delete the file and predict (or import) it again")


def load_if_fresh(path: Path, key: str) -> Prediction | None:
    if not path.exists():
        return None
    try:
        pred = load(path)
    except UserError:
        return None  # a broken cache entry is simply recomputed
    return pred if pred.key == key else None


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities as the cache stores them (float32), from logits or log-probabilities, row by row."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
