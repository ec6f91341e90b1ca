"""The parts of a registry entry, each a small type that checks itself (see core.entry).

Split, EMA weights, starting weights, distillation source, tracking and import reference are
read from the stored mapping here, each remembering the key order it was read in so that
`to_dict()` writes the file back unchanged.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from core.limits import image_size_problem
from core.names import name_problem

# The one spelling of a file hash in the registry: weights, split files, EMA copies, recipes, starting weights.
SHA256 = re.compile(r"[0-9a-f]{64}")
SHA256_RULE = "64 lowercase hex characters"
ORIGIN_KINDS = ("scratch", "hub", "file", "member")
# split.duplicates as imagedata.duplicates.describe_setting writes it; optional, older entries lack it.
DUPLICATES = re.compile(r"off|exact|near<=\d{1,2}")
DISTILLED_FROM_KEYS = ("recipe", "sha256", "members", "rule", "targets", "teacher_val_f1_macro")

def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_sha256(value: Any) -> bool:
    return isinstance(value, str) and SHA256.fullmatch(value) is not None


def relative_path_problem(value: str) -> str | None:
    """Why `value` is not a portable path inside the registry's folder, or None if it is."""
    if not value:
        return "is empty"
    if "\\" in value or PureWindowsPath(value).drive or PurePosixPath(value).is_absolute():
        return "must be a relative POSIX path (written by the pipeline, relative to the registry file)"
    if ".." in PurePosixPath(value).parts:
        return "may not contain '..': entries point only inside the registry's folder"
    return None


def _emit(values: dict, order: tuple | None, optional: dict) -> dict:
    """`values` in the order they were read; optional keys that were never read and hold their default stay out."""
    order = order or ()
    present = [k for k in order if k in values] + [k for k in values if k not in order]
    return {k: values[k] for k in present if k in order or k not in optional or values[k] != optional[k]}


class _Ordered:
    """Remembers the key order of the mapping an object was read from, so writing it back keeps the file as it was."""
    def _remember(self, data: dict):
        object.__setattr__(self, "_order", tuple(data))
        return self

    @property
    def order(self) -> tuple | None:
        return getattr(self, "_order", None)


@dataclass(frozen=True)
class InputSpec:
    """How a member's images are prepared: size [height, width], normalisation, resize filter."""
    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    extra: dict = field(default_factory=dict)

    @property
    def interpolation(self) -> str:
        return str(self.extra.get("interpolation", "bilinear"))

    @classmethod
    def from_dict(cls, value: dict) -> InputSpec:
        size, mean, std = value.get("size"), value.get("mean"), value.get("std")
        problem = image_size_problem(size)  # bounded: a huge size would claim terabytes of image cache
        if problem:
            raise ValueError(f"'size' {problem}")
        for key, stats in (("mean", mean), ("std", std)):
            if not (isinstance(stats, list) and len(stats) == 3 and all(_is_number(v) for v in stats)):
                raise ValueError(f"'{key}' must be three numbers")
        if not all(v > 0 for v in std):
            raise ValueError("'std' must be positive")
        extra = {k: v for k, v in value.items() if k not in ("size", "mean", "std")}
        return cls(tuple(size), tuple(mean), tuple(std), extra)

    def to_dict(self) -> dict:
        return {"size": list(self.size), "mean": list(self.mean), "std": list(self.std), **self.extra}


@dataclass(frozen=True)
class SplitRef(_Ordered):
    """The split file a member was validated on: its name, sha256, fold, fold count and duplicate setting."""
    name: str
    sha256: str
    fold: int | None
    n_folds: int | None = None
    duplicates: str | None = None      # off | exact | near<=N, as imagedata.duplicates.describe_setting writes it
    merged_groups: int | None = None   # groups merged with their copies when the split was made
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, value: dict) -> SplitRef:
        if not isinstance(value.get("name"), str) or not value["name"]:
            raise ValueError("needs a 'name'")
        problem = name_problem(value["name"])  # it names splits/<name>.csv
        if problem:
            raise ValueError(f"'name' {value['name']!r} {problem}")
        if not is_sha256(value.get("sha256")):
            raise ValueError(f"'sha256' must be {SHA256_RULE}")
        fold = value.get("fold")
        if fold is not None and not _is_count(fold):
            raise ValueError("'fold' must be a non-negative integer or null")
        if "duplicates" in value and not (isinstance(value["duplicates"], str)
                                          and DUPLICATES.fullmatch(value["duplicates"])):
            raise ValueError(f": 'duplicates' must be off, exact or near<=N, got {value['duplicates']!r}")
        if "merged_groups" in value and not _is_count(value["merged_groups"]):
            raise ValueError(f": 'merged_groups' must be a whole number >= 0, got {value['merged_groups']!r}")
        known = ("name", "sha256", "fold", "n_folds", "duplicates", "merged_groups")
        extra = {k: v for k, v in value.items() if k not in known}
        n_folds = value.get("n_folds")
        return cls(value["name"], value["sha256"], fold, n_folds if _is_count(n_folds) else None,
                   value.get("duplicates"), value.get("merged_groups"),
                   extra | ({"n_folds": n_folds} if "n_folds" in value and not _is_count(n_folds) else {})
                   )._remember(value)

    def to_dict(self) -> dict:
        values = {"name": self.name, "sha256": self.sha256, "fold": self.fold, "n_folds": self.n_folds,
                  "duplicates": self.duplicates, "merged_groups": self.merged_groups, **self.extra}
        return _emit(values, self.order or ("name", "sha256", "fold"),
                     {"n_folds": None, "duplicates": None, "merged_groups": None})


@dataclass(frozen=True)
class WeightsRef(_Ordered):
    """A second set of weights (the EMA copy): a relative path, its sha256, its decay and validation metrics."""
    weights: str
    sha256: str
    decay: float | None = None
    metrics: dict | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, value: Any) -> WeightsRef | None:
        if value is None:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("weights"), str):
            raise ValueError("must be null or a mapping with 'weights' and 'sha256'")
        if not is_sha256(value.get("sha256")):
            raise ValueError(f"'sha256' must be {SHA256_RULE}")
        problem = relative_path_problem(value["weights"])
        if problem:
            raise ValueError(f"'weights' {problem}")
        if value.get("decay") is not None and not _is_number(value["decay"]):
            raise ValueError(f"'decay' must be a number, got {value['decay']!r}")
        metrics = value.get("metrics")
        if metrics is not None and not isinstance(metrics, dict):
            raise ValueError("'metrics' must be a mapping")
        extra = {k: v for k, v in value.items() if k not in ("weights", "sha256", "decay", "metrics")}
        return cls(value["weights"], value["sha256"], value.get("decay"),
                   None if metrics is None else dict(metrics), extra)._remember(value)

    def to_dict(self) -> dict:
        values = {"weights": self.weights, "sha256": self.sha256, "decay": self.decay, "metrics": self.metrics,
                  **self.extra}
        return _emit(values, self.order or ("weights", "sha256"), {"decay": None, "metrics": None})


@dataclass(frozen=True)
class OriginRef(_Ordered):
    """`weights_origin`: where a member's starting weights came from (modeling.pretrained.WeightsOrigin writes it)."""
    kind: str                 # scratch | hub | file | member
    source: str | None = None
    file: str | None = None   # informational: the path on the machine that trained it
    sha256: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, value: Any) -> OriginRef | None:
        if value is None:
            return None
        if not isinstance(value, dict) or value.get("kind") not in ORIGIN_KINDS:
            raise ValueError(f"must be a mapping whose 'kind' is one of {', '.join(ORIGIN_KINDS)}")
        if value["kind"] != "scratch":
            if not is_sha256(value.get("sha256")):
                raise ValueError(f"needs the 'sha256' ({SHA256_RULE}) of the file the starting weights came from")
            if not isinstance(value.get("source"), str) or not value["source"]:
                raise ValueError("needs a 'source': the hub repo, the file or the member the weights came from")
        extra = {k: v for k, v in value.items() if k not in ("kind", "source", "file", "sha256")}
        return cls(value["kind"], value.get("source"), value.get("file"), value.get("sha256"), extra)._remember(value)

    def to_dict(self) -> dict:
        values = {"kind": self.kind, "source": self.source, "file": self.file, "sha256": self.sha256, **self.extra}
        return _emit(values, self.order or tuple(values), {"source": None, "file": None, "sha256": None})


def weights_origin_problem(value: Any) -> str | None:
    """Why an entry's `weights_origin` is malformed, or None."""
    try:
        OriginRef.from_dict(value)
    except ValueError as err:
        return str(err)
    return None


@dataclass(frozen=True)
class DistilledFrom(_Ordered):
    """`distilled_from` of a student (scripts.distill): the recipe file, its hash, its members and how it voted."""
    recipe: str
    sha256: str
    members: tuple[str, ...]
    rule: str | None = None
    targets: str | None = None
    teacher_val_f1_macro: float | None = None

    @classmethod
    def from_dict(cls, value: Any) -> DistilledFrom | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError("must be a mapping with 'recipe', 'sha256' and 'members'")
        unknown = sorted(set(value) - set(DISTILLED_FROM_KEYS))
        if unknown:
            raise ValueError(f"has unknown key '{unknown[0]}' (known: {', '.join(sorted(DISTILLED_FROM_KEYS))})")
        if not isinstance(value.get("recipe"), str) or not value["recipe"]:
            raise ValueError("needs 'recipe', the path of the recipe file it was distilled from")
        if not is_sha256(value.get("sha256")):
            raise ValueError(f"'sha256' must be {SHA256_RULE} (the recipe file's hash)")
        members = value.get("members")
        if not (isinstance(members, list) and members and all(isinstance(m, str) and m for m in members)):
            raise ValueError("'members' must be a non-empty list of member names")
        return cls(value["recipe"], value["sha256"], tuple(members), value.get("rule"), value.get("targets"),
                   value.get("teacher_val_f1_macro"))._remember(value)

    def to_dict(self) -> dict:
        values = {"recipe": self.recipe, "sha256": self.sha256, "members": list(self.members), "rule": self.rule,
                  "targets": self.targets, "teacher_val_f1_macro": self.teacher_val_f1_macro}
        return _emit(values, self.order or tuple(values), {"rule": None, "targets": None, "teacher_val_f1_macro": None})


@dataclass(frozen=True)
class Tracking:
    """`tracking`: the wandb run a member logged to and the ensemble group it belongs to."""
    wandb_run: str | None = None
    group: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, value: Any) -> Tracking | None:
        if value is None:
            return None
        if not isinstance(value, dict) or not all(v is None or isinstance(v, str)
                                                  for v in (value.get("wandb_run"), value.get("group"))):
            raise ValueError("must be a mapping of 'wandb_run' and 'group' (text or null)")
        return cls(value.get("wandb_run"), value.get("group"),
                   {k: v for k, v in value.items() if k not in ("wandb_run", "group")})

    def to_dict(self) -> dict:
        return {"wandb_run": self.wandb_run, "group": self.group, **self.extra}


@dataclass(frozen=True)
class ImportedRef:
    """`imported`: the member an imported member's predictions were checked against, and their TTA."""
    reference: str
    tta: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, value: Any, kind: str) -> ImportedRef | None:
        if value is None and kind != "imported":
            return None
        if not (isinstance(value, dict) and isinstance(value.get("reference"), str)):
            raise ValueError("must name the 'reference' member the predictions were checked against")
        return cls(value["reference"], value.get("tta"),
                   {k: v for k, v in value.items() if k not in ("reference", "tta")})

    def to_dict(self) -> dict:
        return {"reference": self.reference, "tta": self.tta, **self.extra}


def _mapping_or_none(value: Any, what: str) -> dict | None:
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"must be null or a mapping ({what})")
    return value


def _metrics(value: dict) -> dict[str, float]:
    for key, number in value.items():
        if not _is_number(number):
            raise ValueError(f"'{key}' must be a number, got {number!r}")
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError(f"'{key}' is {number}, not a finite number")
    return dict(value)


def _classes(value: list) -> list[str]:
    if not value or not all(isinstance(c, str) for c in value):
        raise ValueError("must be a non-empty list of strings")
    if len(set(value)) != len(value):
        raise ValueError("lists a class twice")
    return list(value)
