"""Out-of-fold (OOF) predictions: one architecture trained on every fold of one split, stitched together.

A member trained on fold k saved its validation probabilities (`val_probs.npz`).
Over a complete fold group those validation sets tile the whole training pool
exactly once, so every training image gets a prediction from a model that never
saw it; stacking, calibration and ensemble selection can be fitted on them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import atomic
from core.entry import RegistryEntry
from core.errors import UserError
from core.registry import Registry
from imagedata.splits import read_split


@dataclass
class OOF:
    members: list[str]     # one per fold, in fold order
    arch: str
    split: dict            # name, sha256, n_folds
    classes: list[str]
    ids: np.ndarray        # [N] str
    labels: np.ndarray     # [N] int64
    folds: np.ndarray      # [N] the fold whose member predicted the row
    probs: np.ndarray      # [N, C] float32
    logits: np.ndarray     # [N, C] float32


def fold_group(entries: list[RegistryEntry], prefix: str | None = None,
               split_name: str | None = None) -> list[RegistryEntry]:
    """The registry entries whose name starts with `prefix` and/or that were trained on split `split_name`."""
    if prefix is None and split_name is None:
        raise UserError("name the fold group by a member-name prefix, a split name, or both")
    chosen = [e for e in entries
              if (prefix is None or e.name.startswith(prefix))
              and (split_name is None or e.split.name == split_name)]
    if not chosen:
        wanted = " and ".join(x for x in (prefix and f"names starting '{prefix}'",
                                          split_name and f"split '{split_name}'") if x)
        raise UserError(f"no registered member matches {wanted}")
    return chosen


def _check_same(entries: list[RegistryEntry]) -> None:
    first = entries[0]
    for entry in entries[1:]:
        pair = f"members '{first.name}' and '{entry.name}'"
        a, b = first.split, entry.split
        if a.name != b.name:
            raise UserError(f"{pair} were trained on different splits ('{a.name}' vs '{b.name}'); "
                            f"a fold group shares one split")
        if a.sha256 != b.sha256:
            raise UserError(f"{pair} both name split '{a.name}' but were trained on different versions of "
                            f"its file (sha256 {a.sha256[:12]}… vs {b.sha256[:12]}…)")
        if a.n_folds != b.n_folds:
            raise UserError(f"{pair} disagree on the number of folds ({a.n_folds} vs {b.n_folds})")
        if entry.arch != first.arch:
            raise UserError(f"{pair} are different architectures ({first.arch} vs {entry.arch}); "
                            f"assemble one fold group per architecture")
        if entry.classes != first.classes:
            raise UserError(f"{pair} have different class lists")


def _by_fold(entries: list[RegistryEntry]) -> list[RegistryEntry]:
    """Entries in fold order; refuses a missing or doubly covered fold, naming it."""
    n_folds = entries[0].split.n_folds
    if not isinstance(n_folds, int) or n_folds < 2:
        raise UserError(f"member '{entries[0].name}' records no fold count (split.n_folds); retrain it")
    slots: dict[int, RegistryEntry] = {}
    for entry in entries:
        fold = entry.split.fold
        if not isinstance(fold, int) or not 0 <= fold < n_folds:
            raise UserError(f"member '{entry.name}' records fold {fold!r}, not one of 0..{n_folds - 1}")
        if fold in slots:
            raise UserError(f"fold {fold} of split '{entry.split.name}' is covered twice, by "
                            f"'{slots[fold].name}' and '{entry.name}'; narrow the prefix")
        slots[fold] = entry
    missing = [k for k in range(n_folds) if k not in slots]
    if missing:
        have = ", ".join(f"{e.name} (fold {e.split.fold})" for e in entries)
        raise UserError(f"incomplete fold group for split '{entries[0].split.name}': fold "
                        f"{', '.join(map(str, missing))} of 0..{n_folds - 1} has no member (have: {have})")
    return [slots[k] for k in range(n_folds)]


def check_fold_group(entries: list[RegistryEntry]) -> list[RegistryEntry]:
    """The entries of a complete fold group, in fold order; a one-line refusal names what is wrong."""
    _check_same(entries)
    return _by_fold(entries)


def _val_probs(registry: Registry, entry: RegistryEntry) -> dict[str, np.ndarray]:
    if not entry.val_probs:
        raise UserError(f"member '{entry.name}' records no val_probs file; retrain it")
    path = registry.resolve(entry.val_probs)
    if not path.exists():
        raise UserError(f"member '{entry.name}': its validation probabilities {path} are missing")
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in ("ids", "labels", "probs", "logits")}


def _align_to_split(oof: OOF, split_file: Path) -> OOF:
    """Put rows in split-file order and prove they cover its pool exactly, each on its own fold."""
    split = read_split(split_file)
    if split.sha256 != oof.split["sha256"]:
        raise UserError(f"split file {split_file} changed since the fold group was trained "
                        f"(sha256 {split.sha256[:12]}… vs {oof.split['sha256'][:12]}…)")
    position = {row_id: i for i, row_id in enumerate(oof.ids)}
    absent = [row_id for row_id in split.table["id"] if row_id not in position]
    if absent or len(position) != len(split.table):
        raise UserError(f"the fold group's validation rows do not cover split file {split_file}: "
                        f"{len(absent)} of its {len(split.table)} rows have no out-of-fold prediction"
                        + (f", e.g. '{absent[0]}'" if absent else ""))
    order = np.array([position[row_id] for row_id in split.table["id"]])
    if not np.array_equal(oof.folds[order], split.table["fold"].to_numpy()):
        raise UserError(f"a member's validation rows differ from its fold in split file {split_file}")
    return OOF(oof.members, oof.arch, oof.split, oof.classes, oof.ids[order], oof.labels[order], oof.folds[order],
               oof.probs[order], oof.logits[order])


def assemble_oof(entries: list[RegistryEntry], registry: Registry, split_file: Path | None = None) -> OOF:
    """Stitch a complete fold group's validation predictions into one prediction per training row.

    Refuses a group with a missing or repeated fold, members whose split files
    differ, and validation sets that overlap. With `split_file`, rows follow its
    order and must cover it exactly.
    """
    if not entries:
        raise UserError("no members given for the out-of-fold predictions")
    _check_same(entries)
    ordered = _by_fold(entries)
    return stitch_oof(ordered, [_val_probs(registry, entry) for entry in ordered], split_file)


def stitch_oof(entries: list[RegistryEntry], parts: list[dict[str, np.ndarray]], split_file: Path | None = None) -> OOF:
    """`assemble_oof` from validation predictions already at hand (e.g. the prediction cache's):
    `parts[k]` holds ids, labels, probs and logits of `entries[k]`'s validation rows."""
    if not entries:
        raise UserError("no members given for the out-of-fold predictions")
    _check_same(entries)
    order = [e.name for e in _by_fold(entries)]
    by_name = {e.name: (e, p) for e, p in zip(entries, parts)}
    ordered = [by_name[n][0] for n in order]
    parts = [by_name[n][1] for n in order]
    ids = np.concatenate([p["ids"] for p in parts]).astype(str)
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        row_id = unique[counts > 1][0]
        owners = [e.name for e, p in zip(ordered, parts) if row_id in set(np.asarray(p["ids"]).tolist())]
        raise UserError(f"image '{row_id}' is in the validation rows of {' and '.join(owners)}: "
                        f"their folds overlap, so these are not out-of-fold predictions")
    first = ordered[0]
    oof = OOF(
        members=[e.name for e in ordered],
        arch=first.arch,
        split={"name": first.split.name, "sha256": first.split.sha256, "n_folds": first.split.n_folds},
        classes=list(first.classes),
        ids=ids,
        labels=np.concatenate([p["labels"] for p in parts]).astype(np.int64),
        folds=np.concatenate([np.full(len(p["ids"]), k, dtype=np.int64) for k, p in enumerate(parts)]),
        probs=np.concatenate([p["probs"] for p in parts]).astype(np.float32),
        logits=np.concatenate([p["logits"] for p in parts]).astype(np.float32),
    )
    return _align_to_split(oof, split_file) if split_file is not None else oof


def save_oof(oof: OOF, path: Path) -> Path:
    """One npz, readable without pickle: the arrays plus members, classes and the split's identity."""
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=oof.ids.astype(str), labels=oof.labels, folds=oof.folds, probs=oof.probs,
                     logits=oof.logits, classes=np.asarray(oof.classes, dtype=str),
                     members=np.asarray(oof.members, dtype=str), arch=np.asarray(oof.arch),
                     split=np.asarray([oof.split["name"], oof.split["sha256"], str(oof.split["n_folds"])]))
    return Path(path)
