"""Pseudo-label sets on disk (pseudo/<name>/) and the rows one student may take from one.

Files, written together (the folder is swapped in whole):
  pseudo.yaml   the record: recipe path and sha256, rule, threshold, cap, split, the teachers of
                every fold (member -> the fold it was validated on), counts, calibration, teacher.npz's sha256
  labels.csv    ImageID, class, confidence (the recipe's own test prediction), then per fold k
                fold{k}_class, fold{k}_confidence, fold{k}_pass
  counts.csv    passing images per class and fold
  teacher.npz   ids [N], classes [C], folds [F], probs [F, N, C] float32, passing [F, N] bool (no pickle)

A student on fold k of the set's split takes the rows that pass for fold k, with fold k's
teacher prediction (the hard label is its argmax). `ensemble.pseudo.fold_problem` refuses any
other student in one line, from the record alone.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core import files
from core.atomic import atomic_folder
from core.entry import RegistryEntry
from core.errors import UserError
from core.hashing import sha256_file
from core.names import path_inside
from core.settings import Settings
from ensemble.pseudo import fold_problem
from imagedata.duplicates import duplicate_links
from imagedata.prescan import apply_policy, file_hashes

log = logging.getLogger("members")
RECORD, TABLE, COUNTS, TEACHER = "pseudo.yaml", "labels.csv", "counts.csv", "teacher.npz"
ROW_PREFIX = "pseudo:"  # pool ids of pseudo rows, so a test ImageID never collides with a training id


def pseudo_dir(settings: Settings, name: str) -> Path:
    return path_inside(settings.output_root / "pseudo", name, "pseudo-label set")


@dataclass
class PseudoSet:
    name: str
    classes: list[str]
    ids: np.ndarray                      # [N] test ImageIDs
    probs: dict[int, np.ndarray]         # fold -> [N, C] the teacher prediction that fold may use
    passing: dict[int, np.ndarray]       # fold -> [N] bool
    meta: dict = field(default_factory=dict)


def write_set(folder: Path, made: PseudoSet, table: pd.DataFrame, counts: pd.DataFrame) -> None:
    folds = sorted(made.probs)
    with atomic_folder(folder) as stage:
        with open(stage / TEACHER, "wb") as fh:
            np.savez(fh, ids=made.ids.astype(str), classes=np.asarray(made.classes, dtype=str),
                     folds=np.asarray(folds, dtype=np.int64),
                     probs=np.stack([made.probs[k] for k in folds]).astype(np.float32),
                     passing=np.stack([made.passing[k] for k in folds]))
        table.to_csv(stage / TABLE, index=False)
        counts.to_csv(stage / COUNTS)
        record = {"name": made.name, **made.meta, "classes": list(made.classes),
                  "rows": {k: int(made.passing[k].sum()) for k in folds},
                  "counts": {k: {c: int(n) for c, n in counts[f"fold {k}"].drop("total").items()} for k in folds},
                  "teacher_sha256": sha256_file(stage / TEACHER)}
        (stage / RECORD).write_text(files.dump_yaml(record, sort_keys=False), encoding="utf-8")


def read_record(settings: Settings, name: str) -> tuple[dict, Path]:
    folder = pseudo_dir(settings, name)
    if not (folder / RECORD).is_file():
        made = sorted(p.name for p in folder.parent.glob("*") if (p / RECORD).is_file())
        raise UserError(f"pseudo-label set '{name}' does not exist in {folder.parent} (made: "
                        f"{', '.join(made) or 'none'}); make it with python -m scripts.pseudo --recipe … --name {name}")
    try:
        record = files.read_yaml(folder / RECORD, "pseudo-label record")
        record["split"], record["folds"], record["classes"]
    except Exception as err:  # a damaged record is one line, whatever yaml or the lookup raised
        raise UserError(f"pseudo-label set '{name}': {folder / RECORD} cannot be read ({err}); remake the set") from err
    return record, folder


def read_teacher(folder: Path, record: dict, fold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, probs [N, C], passing [N]) of one fold, after checking the file is the one the record names."""
    path = folder / TEACHER
    if not path.is_file() or sha256_file(path) != record.get("teacher_sha256"):
        raise UserError(f"pseudo-label set '{record['name']}': {path} is missing or changed since the set was made; "
                        f"remake the set")
    with np.load(path, allow_pickle=False) as data:
        position = list(data["folds"].tolist()).index(fold)
        return data["ids"].astype(str), data["probs"][position], data["passing"][position]


@dataclass
class PseudoRows:
    """The test images one student trains on, with the teacher prediction its fold may use."""
    ids: list[str]          # pool ids (ROW_PREFIX + ImageID)
    paths: list[str]
    labels: np.ndarray      # int64 [n]: the teacher's class
    probs: np.ndarray       # float32 [n, C]: the teacher's probabilities (soft targets)
    mode: str               # hard | soft
    provenance: dict        # the registry entry's `pseudo`


def set_name(config) -> str | None:
    """data.pseudo (hard labels) or distill.unlabeled (soft targets); both must name the same set."""
    hard, soft = config.data.pseudo, config.distill.unlabeled
    if hard and soft and hard != soft:
        raise UserError(f"data.pseudo={hard} and distill.unlabeled={soft} name different pseudo-label sets; "
                        f"name one set (distill.unlabeled trains on its soft targets)")
    return soft or hard


def student_set(config, settings: Settings, dataset) -> tuple[str, dict, Path] | None:
    """(name, record, folder) of the set this student asks for, checked against its classes; None without one.
    Needs only the data listing, so scripts.train runs it before the training stack loads."""
    name = set_name(config)
    if name is None:
        return None
    record, folder = read_record(settings, name)
    if list(record["classes"]) != [str(c) for c in dataset.classes]:
        raise UserError(f"pseudo-label set '{name}' labels {len(record['classes'])} classes ({', '.join(record['classes'][:5])}"
                        f"…) but member '{config.name}' learns {len(dataset.classes)} "
                        f"({', '.join(map(str, dataset.classes[:5]))}…): make the set from a recipe of this member's classes")
    return name, record, folder


def check_student_early(config, settings: Settings, dataset) -> None:
    """The checks of `student_rows` that need no image: the set and its classes, and, when the student's split
    file was already made (by the set's own teachers, usually), the fold rule on that file. A split made now is
    checked in `student_rows`, after the pre-scan has made it."""
    found = student_set(config, settings, dataset)
    if found is None:
        return
    s = config.data.split
    split_file = path_inside(settings.splits, s.name, "split name (data.split.name)", ".csv")
    if split_file.is_file():
        problem = fold_problem(config.name, {"name": s.name, "sha256": sha256_file(split_file)}, s.fold, found[1])
        if problem:
            raise UserError(problem)


def student_rows(config, settings: Settings, dataset, split_sha256: str) -> PseudoRows | None:
    """Check the set against this student (classes, split, fold) and return the rows its fold may use."""
    found = student_set(config, settings, dataset)
    if found is None:
        return None
    name, record, folder = found
    s = config.data.split
    problem = fold_problem(config.name, {"name": s.name, "sha256": split_sha256}, s.fold, record)
    if problem:
        raise UserError(problem)
    ids, probs, passing = read_teacher(folder, record, s.fold)
    test = dataset.test
    paths = pd.Series([] if test is None else test["path"].tolist(),
                      index=[] if test is None else test["id"].astype(str).tolist(), dtype=object)
    chosen = ids[passing]
    missing = [i for i in chosen if i not in paths.index]
    if missing:
        raise UserError(f"pseudo-label set '{name}' names test image '{missing[0]}', which is not in member "
                        f"'{config.name}''s test list ({config.data.test or 'the data source default'})")
    probs = probs[passing].astype(np.float32)
    mode = "soft" if config.distill.unlabeled else "hard"
    provenance = {"name": name, "sha256": record["teacher_sha256"], "threshold": record["threshold"],
                  "rows": len(chosen), "fold": s.fold, "mode": mode, "weight": config.pseudo.weight,
                  "recipe": record.get("recipe"), "recipe_sha256": record.get("recipe_sha256"),
                  "rule": record.get("rule")}
    return PseudoRows([ROW_PREFIX + i for i in chosen], paths[chosen].tolist(), probs.argmax(1).astype(np.int64),
                      probs, mode, provenance)


def screen(rows: PseudoRows, config, settings: Settings, pool: pd.DataFrame, val_ids: list[str]) -> PseudoRows:
    """Bad images under data.on_bad_image, like any image; copies of training images reported, and copies of
    this member's validation images dropped (training on a copy of a validation image inflates its score)."""
    table = pd.DataFrame({"id": rows.ids, "path": rows.paths})
    kept, _ = apply_policy(table, config.data.on_bad_image, settings.image_cache,
                           f"pseudo-label set '{rows.provenance['name']}'")
    keep = table["id"].isin(kept["id"]).to_numpy()
    if config.data.duplicates != "off" and len(table):
        paths = pool["path"].tolist() + table["path"].tolist()
        sha, phash = file_hashes(paths, settings.image_cache, desc="hash pseudo-labelled images")
        links = duplicate_links(sha, phash, config.data.duplicates, config.data.near_duplicate_distance)
        n_pool, is_val = len(pool), pool["id"].astype(str).isin(set(val_ids)).to_numpy()
        hits = {(max(a, b) - n_pool, min(a, b)) for a, b in links if (a >= n_pool) != (b >= n_pool)}
        copies_of_val = {p for p, t in hits if is_val[t]}
        if hits:
            log.warning("pseudo-labels: %d test image(s) duplicate a training-pool image (e.g. %s ~ %s); %d of them "
                        "copy a validation image of this member and are left out", len({p for p, _ in hits}),
                        rows.ids[next(iter(hits))[0]], pool["id"].iloc[next(iter(hits))[1]], len(copies_of_val))
        keep[list(copies_of_val)] = False
    if keep.all():
        return rows
    index = np.flatnonzero(keep)
    return PseudoRows([rows.ids[i] for i in index], [rows.paths[i] for i in index], rows.labels[index],
                      rows.probs[index], rows.mode, {**rows.provenance, "rows": len(index)})


def pseudo_notes(units: dict[str, list[RegistryEntry]]) -> list[str]:
    """Report lines marking each voting unit whose members trained on pseudo-labels, with their teacher."""
    lines = []
    for unit, entries in units.items():
        used = [e.pseudo for e in entries if e.pseudo is not None]
        if not used:
            continue
        names = sorted({p.name for p in used})
        teachers = sorted({f"recipe `{p.extra.get('recipe')}` (rule `{p.extra.get('rule')}`)" for p in used})
        rows = ", ".join(str(p.rows) for p in used)
        lines.append(f"`{unit}` (pseudo: {', '.join(names)}) also trained on pseudo-labelled test images ({rows} "
                     f"per member, threshold {used[0].threshold}, {used[0].extra.get('mode', 'hard')} targets); teacher: "
                     f"{'; '.join(teachers)}, fold-safe (each fold learnt only from models validated on it). Its "
                     f"scores here use real validation rows only.")
    return lines
