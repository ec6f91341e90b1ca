"""Member predictions gathered for voting, keyed by member name and checked for compatibility."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.entry import RegistryEntry
from core.errors import UserError
from predict.cache import Prediction


@dataclass
class VoteInputs:
    names: list[str]
    classes: list[str]
    val_ids: np.ndarray
    val_labels: np.ndarray
    val_probs: np.ndarray     # [members, rows, classes], members in `names` order
    test_ids: np.ndarray | None
    test_probs: np.ndarray | None

    def by_name(self, split: str = "val") -> dict[str, np.ndarray]:
        probs = self.val_probs if split == "val" else self.test_probs
        return {name: probs[i] for i, name in enumerate(self.names)}


def class_difference(a: list[str], b: list[str]) -> str:
    if len(a) != len(b):
        return f"{len(a)} vs {len(b)} classes"
    if sorted(a) == sorted(b):
        return "same classes in a different order"
    first = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    return f"class #{first} is '{a[first]}' vs '{b[first]}'"


def check_compatible(entries: list[RegistryEntry]) -> None:
    """Refuse to vote members that disagree on classes or on the validation split they were scored on."""
    first = entries[0]
    for entry in entries[1:]:
        pair = f"members '{first.name}' and '{entry.name}'"
        if entry.classes != first.classes:
            raise UserError(f"{pair} have different class lists ({class_difference(first.classes, entry.classes)})")
        a, b = first.split, entry.split
        if (a.name, a.fold) == (b.name, b.fold) and a.sha256 != b.sha256:
            raise UserError(f"{pair} both claim split '{a.name}' fold {a.fold}, but its file differed when each "
                            f"was trained (sha256 {a.sha256[:12]}… vs {b.sha256[:12]}…): the split file was "
                            f"remade in between; retrain one of them on the current file")
        if (a.name, a.sha256, a.fold) != (b.name, b.sha256, b.fold):
            raise UserError(f"{pair} were validated on different splits "
                            f"({a.name} fold {a.fold} vs {b.name} fold {b.fold}); "
                            f"weights tuned on one would be scored on the other's training rows")


def corrections_of(entry: RegistryEntry) -> str:
    """How a member's labels were corrected, as a one-line description ('none' without a corrections file)."""
    value = entry.corrections
    if value is None:
        return "none"
    return f"{value.file} (sha256 {value.sha256[:12]}…)"


def check_same_corrections(entries: list[RegistryEntry]) -> None:
    """Members trained on different corrected labels are refused together, like members on another split:
    their validation rows and labels are not the same set, so no vote or weight can be scored fairly."""
    first = entries[0]
    for entry in entries[1:]:
        if corrections_of(entry) != corrections_of(first):
            raise UserError(f"members '{first.name}' and '{entry.name}' were trained on different label corrections "
                            f"({corrections_of(first)} vs {corrections_of(entry)}); vote members trained on one "
                            f"corrections file (data.corrections), like members of one split")


def parse_weights(items: list[str] | None, names: list[str]) -> np.ndarray:
    """`name=weight` pairs; members not named get weight 1. Never positional, never file order."""
    weights = dict.fromkeys(names, 1.0)
    given: set[str] = set()
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"weight '{item}' must look like member=weight")
        if name not in weights:
            raise UserError(f"weight given for '{name}', which is not among the voting members ({', '.join(names)})")
        if name in given:
            raise UserError(f"weight for '{name}' is given twice in --weights; give each member one weight")
        given.add(name)
        try:
            weights[name] = float(value)
        except ValueError as err:
            raise UserError(f"weight for '{name}' is '{value}', not a number") from err
        if not math.isfinite(weights[name]):
            raise UserError(f"weight for '{name}' is '{value}', not a finite number")
        if weights[name] < 0:
            raise UserError(f"weight for '{name}' is negative")
    if sum(weights.values()) <= 0:
        raise UserError("all member weights are zero")
    return np.array([weights[n] for n in names], dtype=np.float64)


def _same_rows(preds: dict[str, Prediction], split: str, names: list[str]) -> np.ndarray:
    ids = preds[names[0]].ids
    for name in names[1:]:
        if not np.array_equal(preds[name].ids, ids):
            raise UserError(f"members '{names[0]}' and '{name}' have different {split} rows in their predictions")
    return ids


def gather(names: list[str], entries: list[RegistryEntry], predictions: dict[str, dict[str, Prediction]],
           with_test: bool = True, checked: bool = False) -> VoteInputs:
    """Stack the members' cached predictions; `checked` says the caller already ran check_compatible."""
    if not checked:
        check_compatible(entries)
    val = {n: predictions[n]["val"] for n in names}
    val_ids = _same_rows(val, "val", names)
    test_ids = test_probs = None
    if with_test and all("test" in predictions[n] for n in names):
        test = {n: predictions[n]["test"] for n in names}
        test_ids = _same_rows(test, "test", names)
        test_probs = np.stack([test[n].probs for n in names])
    return VoteInputs(list(names), list(entries[0].classes), val_ids, val[names[0]].labels,
                      np.stack([val[n].probs for n in names]), test_ids, test_probs)
