"""Pseudo-labels on unlabelled (test) images, fold-safe by construction; numpy and pandas only.

A member trained on fold k of a split validates on fold k's rows. If its pseudo-labels came from a
model that trained on those rows, that model's knowledge of their labels would flow into the
student and inflate its validation score. So every pseudo-label set keeps, for each fold k it
serves, only teacher predictions made by models validated on fold k of that split (models that
never trained on its rows): for fold groups, each unit's fold-k model, combined by the recipe's
rule; for holdout members, the one fold they were all validated on.

The rule is checked twice: when the set is made (`fold_teachers`) and when a student asks for it
(`fold_problem`), from the teachers recorded per fold, so a set written by other means is held to
the same rule.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd


def threshold_problem(value: float) -> str | None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 < value <= 1.0):
        return f"is {value!r}: a confidence threshold must lie in (0, 1]"
    return None


def cap_problem(value: float | None) -> str | None:
    if value is None:
        return None
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 < value <= 1.0):
        return f"is {value!r}: a per-class cap is a share of the test images in (0, 1]"
    return None


def fold_teachers(units: Mapping[str, Mapping[str, int]], split_folds: Mapping[str, int]) -> dict[int, dict[str, str]]:
    """For each fold k a student may train on: unit -> the member whose predictions fold k may use.

    `units` maps each voting unit to its members and the fold each was validated on; `split_folds`
    gives every member's split fold count. A fold group serves every fold (its fold-k model for
    fold k); holdout members serve only the fold they were validated on, and must all share it.
    """
    served: set[int] | None = None
    for members in units.values():
        folds = set(members.values())
        served = folds if served is None else served & folds
    out: dict[int, dict[str, str]] = {}
    for k in sorted(served or ()):
        out[k] = {unit: next(m for m, f in members.items() if f == k) for unit, members in units.items()}
    return out


def fold_problem(student: str, split: Mapping, fold: int, pseudo: Mapping) -> str | None:
    """Why a student on `fold` of `split` may not learn from pseudo-label set `pseudo`, or None.

    `pseudo` is the set's record (pseudo.yaml): its split (name, sha256) and, per fold, the teacher
    members with the fold each was validated on. Only teachers validated on the student's own fold
    (so never trained on its validation rows) are allowed.
    """
    theirs = pseudo["split"]
    where = f"pseudo-label set '{pseudo['name']}'"
    if split.get("name") != theirs["name"] or split.get("sha256") != theirs["sha256"]:
        return (f"member '{student}' trains on split '{split.get('name')}' but {where} was made by members of split "
                f"'{theirs['name']}' (sha256 {str(theirs['sha256'])[:12]}…): their training rows may be this "
                f"member's validation rows; make a set from a recipe on the member's own split")
    teachers = pseudo["folds"].get(fold) or pseudo["folds"].get(str(fold))
    if not teachers:
        have = ", ".join(str(k) for k in pseudo["folds"])
        return (f"member '{student}' validates on fold {fold} of split '{theirs['name']}', but every teacher of {where} "
                f"trained on that fold's rows (it serves fold(s) {have} only)")
    for teacher, teacher_fold in teachers.items():
        if teacher_fold != fold:
            return (f"member '{student}' validates on fold {fold}, but {where} gives that fold predictions of "
                    f"'{teacher}', which validated on fold {teacher_fold} and so trained on fold {fold}'s rows")
    return None


def select(probs: np.ndarray, threshold: float, cap: float | None = None) -> np.ndarray:
    """bool [rows]: the rows whose top probability reaches `threshold`; with `cap`, each class keeps at most
    cap x rows of them, the most confident first (ties broken by row order, so the choice is reproducible)."""
    confidence = probs.max(1)
    chosen = confidence >= threshold
    if cap is None:
        return chosen
    limit = math.floor(cap * len(probs))
    labels = probs.argmax(1)
    out = np.zeros(len(probs), bool)
    for c in np.unique(labels[chosen]):
        rows = np.flatnonzero(chosen & (labels == c))
        keep = rows[np.argsort(-confidence[rows], kind="stable")[:limit]]
        out[keep] = True
    return out


def calibration(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float | int]:
    """How often the teacher is right on held-out rows at or above the threshold: the evidence for choosing it."""
    above = probs.max(1) >= threshold
    n = int(above.sum())
    right = float((probs.argmax(1)[above] == labels[above]).mean()) if n else float("nan")
    return {"rows": len(labels), "above": n, "share_above": n / max(1, len(labels)), "accuracy_above": right}


def table(ids: np.ndarray, classes: list[str], overall: np.ndarray, by_fold: Mapping[int, np.ndarray],
          passing: Mapping[int, np.ndarray]) -> pd.DataFrame:
    """One row per test image: the recipe's class and confidence, then for each fold the class, confidence
    and verdict of the prediction that fold may use."""
    names = np.asarray(classes, dtype=str)
    out = pd.DataFrame({"ImageID": np.asarray(ids, dtype=str), "class": names[overall.argmax(1)],
                        "confidence": overall.max(1).round(6)})
    for k, probs in by_fold.items():
        out[f"fold{k}_class"] = names[probs.argmax(1)]
        out[f"fold{k}_confidence"] = probs.max(1).round(6)
        out[f"fold{k}_pass"] = passing[k]
    return out


def counts(classes: list[str], by_fold: Mapping[int, np.ndarray], passing: Mapping[int, np.ndarray]) -> pd.DataFrame:
    """Passing images per class (rows) and fold (columns), with a total row."""
    columns = {}
    for k, probs in by_fold.items():
        labels = probs.argmax(1)[passing[k]]
        columns[f"fold {k}"] = np.bincount(labels, minlength=len(classes))
    out = pd.DataFrame(columns, index=pd.Index(classes, name="class"))
    out.loc["total"] = out.sum()
    return out
