"""Predictions made elsewhere, checked and stored in the prediction cache so they can be voted.

    python -m scripts.predict import --member kaggle-vit --part val --npz vit_val.npz --like digits-resnet18

A foreign file needs `ids`, `probs` and `classes` (see the README's "Prediction cache
format"); `logits`, `labels` and `tta` are optional. It is checked against a registered
reference member (`--like`): the same class list in the same order, and exactly the rows
of the reference's validation fold or test list (any order; stored in the reference's).
An imported member then votes under its own name, with the reference's split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core import files
from core.entry import RegistryEntry
from core.errors import UserError
from core.hashing import sha256_file
from core.names import check_member_name
from core.registry import Registry
from core.settings import Settings
from predict import cache
from predict.loading import member_info
from predict.rows import part_rows

SUM_TOLERANCE = 1e-3


def _field(z, name: str, path: Path, required: bool = True):
    if name in z.files:
        return z[name]
    if required:
        raise UserError(f"{path}: field '{name}' is missing (fields: {', '.join(z.files) or 'none'}); "
                        f"a prediction file needs ids, probs and classes")
    return None


def _read(path: Path, rows: int, classes: int) -> dict:
    files.regular_file(path, "prediction file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    # np.load hands anything that is neither .npy nor .npz to pickle, whose refusal would call a text file
    # "pickled data"; an .npz is a zip archive, so say what the file is not before numpy guesses.
    if magic != b"PK\x03\x04":
        raise UserError(f"{path} is not an .npz file (an .npz is a zip archive written by np.savez; "
                        f"this file starts with {magic!r})")
    # Shapes and sizes from the headers first: a header may claim 373 GiB, a 2 MB member inflate to 3 GB.
    files.check_npz(path, "prediction file", files.npz_budget(rows, classes))
    try:
        with np.load(path, allow_pickle=False) as z:
            fields = {name: _field(z, name, path, name in ("ids", "probs", "classes"))
                      for name in ("ids", "probs", "classes", "logits", "labels", "tta")}
    except ValueError as err:  # object arrays need pickle, which is never allowed for foreign files
        raise UserError(f"{path}: {err}; store ids and classes as plain string arrays (np.array(..., dtype=str))") from err
    except OSError as err:
        raise UserError(f"{path} is not a readable .npz file ({err})") from err
    return fields


def _check_probs(probs: np.ndarray, n: int, c: int, path: Path) -> np.ndarray:
    if probs.shape != (n, c):
        raise UserError(f"{path}: probs has shape {probs.shape}, expected ({n} ids, {c} classes)")
    if not np.issubdtype(probs.dtype, np.floating):
        raise UserError(f"{path}: probs must be floating point, not {probs.dtype}")
    probs = probs.astype(np.float32)
    if not np.isfinite(probs).all():
        raise UserError(f"{path}: probs row {int(np.where(~np.isfinite(probs).all(1))[0][0])} is not finite")
    sums = probs.sum(1)
    bad = np.where((probs < 0).any(1) | (np.abs(sums - 1) > SUM_TOLERANCE))[0]
    if len(bad):
        raise UserError(f"{path}: probs row {int(bad[0])} sums to {sums[bad[0]]:.4f} or has a negative value; "
                        f"rows must be probabilities (apply a softmax to logits first)")
    return probs


def _check_labels(labels: np.ndarray, n: int, c: int, path: Path) -> np.ndarray:
    """Optional true labels: one whole number per id, a class index or -1 (unknown)."""
    if labels.shape != (n,):
        raise UserError(f"{path}: labels has shape {labels.shape}, expected ({n},): one per id")
    if np.issubdtype(labels.dtype, np.floating) and np.isfinite(labels).all() and (labels == np.round(labels)).all():
        labels = labels.astype(np.int64)  # 3.0 is a class index written by a float array
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{path}: labels must be whole numbers (class indices, -1 where unknown), not {labels.dtype}")
    bad = np.where((labels < -1) | (labels >= c))[0]
    if len(bad):
        raise UserError(f"{path}: labels row {int(bad[0])} is {labels[bad[0]]}, outside -1..{c - 1}")
    return labels.astype(np.int64)


def _order(ids: np.ndarray, expected: list[str], path: Path, where: str) -> np.ndarray:
    """Positions in the foreign file of each expected row; refuses missing, extra or repeated ids."""
    ids = [str(i) for i in ids]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        twice = next(i for i in ids if i in seen or seen.add(i))
        raise UserError(f"{path}: id '{twice}' appears twice")
    position = {i: k for k, i in enumerate(ids)}
    missing = [i for i in expected if i not in position]
    if missing:
        raise UserError(f"{path}: {len(missing)} row(s) of {where} are missing, e.g. '{missing[0]}'")
    extra = sorted(set(ids) - set(expected))
    if extra:
        raise UserError(f"{path}: {len(extra)} id(s) are not rows of {where}, e.g. '{extra[0]}'")
    return np.array([position[i] for i in expected], dtype=np.int64)


def import_predictions(registry: Registry, settings: Settings, member: str, part: str, npz: Path, like: str,
                       overwrite: bool = False) -> Path:
    """Check a foreign prediction file against the reference member `like` and store it in the cache."""
    npz = Path(npz)
    check_member_name(member, "--member")  # it names a folder of the prediction cache
    if registry.exists(member):
        raise UserError(f"'{member}' is a registered member; its predictions come from its weights. "
                        f"Import under another name")
    target = cache.cache_path(settings.predictions, member, part)
    if target.exists() and not overwrite:
        raise UserError(f"{target} already holds '{member}' {part} predictions; pass --overwrite to replace them")
    reference = member_info(registry, registry.get(like))
    rows = part_rows(registry, reference, settings, part)
    where = f"'{like}' {part} rows"
    data = _read(npz, len(rows.ids), len(reference.classes))
    if np.asarray(data["classes"]).ndim != 1:
        raise UserError(f"{npz}: classes must be a one-dimensional list of names, not shape "
                        f"{np.asarray(data['classes']).shape}")
    classes = [str(c) for c in data["classes"]]
    if classes != reference.classes:
        same_set = sorted(classes) == sorted(reference.classes)
        raise UserError(f"{npz}: classes {classes[:5]}… differ from '{like}' classes {reference.classes[:5]}…"
                        + (" (same names, other order: reorder the probs columns)" if same_set else ""))
    ids = np.asarray(data["ids"])
    if ids.ndim != 1:
        raise UserError(f"{npz}: ids must be one-dimensional, not shape {ids.shape}")
    probs = _check_probs(np.asarray(data["probs"]), len(ids), len(classes), npz)
    take = _order(ids, rows.ids, npz, where)
    probs = probs[take]
    logits = data["logits"]
    if logits is None:
        logits = np.log(np.clip(probs, 1e-12, None))
    else:
        if (logits.shape != (len(ids), len(classes)) or not np.issubdtype(logits.dtype, np.floating)
                or not np.isfinite(logits).all()):
            raise UserError(f"{npz}: logits must be finite floating-point numbers with the same shape as probs "
                            f"{(len(ids), len(classes))}, not {logits.dtype} {logits.shape}")
        logits = logits[take]
    truth = np.asarray(rows.labels, dtype=np.int64)
    if data["labels"] is not None:
        given = _check_labels(np.asarray(data["labels"]), len(ids), len(classes), npz)[take]
        wrong = np.where((given >= 0) & (truth >= 0) & (given != truth))[0]
        if len(wrong):
            raise UserError(f"{npz}: row '{rows.ids[wrong[0]]}' has label {given[wrong[0]]}, but {where} say "
                            f"{truth[wrong[0]]}; the file's rows or class order do not match")
    tta = str(data["tta"]) if data["tta"] is not None else "unknown"
    pred = cache.Prediction(np.asarray(rows.ids), probs, logits.astype(np.float32), truth, classes,
                            f"imported:{sha256_file(npz)}", tta, "imported", like)
    return cache.save(target, pred)


def imported(settings: Settings, name: str, parts) -> dict[str, cache.Prediction]:
    """The imported predictions of `name` for the requested parts (val, test); {} if it was never imported."""
    found = {}
    for part in parts:
        path = cache.cache_path(settings.predictions, name, part)
        if path.exists():
            pred = cache.load(path)
            if pred.origin == "imported":
                found[part] = pred
    return found


def member_entry(registry: Registry, settings: Settings, name: str) -> RegistryEntry:
    """A registry entry, or for an imported member one built from its reference's split and data."""
    if registry.exists(name):
        return registry.get(name)
    found = imported(settings, name, ("val", "test"))
    if not found:
        return registry.get(name)  # raises the standard "not registered" message
    pred = next(iter(found.values()))
    if not registry.exists(pred.reference):
        raise UserError(f"imported member '{name}' was checked against '{pred.reference}', which is no longer "
                        f"registered; import it again with another --like")
    # An imported member has no weights of its own: it is its own kind of entry, checked like any other.
    return registry.get(pred.reference).imported_as(name, list(pred.classes), pred.tta)
