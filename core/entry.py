"""One registry entry, typed: every field is checked once, in `RegistryEntry.from_dict`.

An entry is what every later stage knows about a member: where its weights and config are,
which classes it predicts, how its input is prepared, and which validation rows it was
scored on. Two kinds exist:
- `trained` (the default): a member trained here, with a weights file and its sha256;
- `imported`: predictions made elsewhere (`scripts.predict import`), which vote like a
  member but have no weights; they borrow the split and config of the member they were
  checked against (`imported.reference`).

`to_dict()` gives back the mapping stored in registry.yaml, unknown fields included, so an
entry read and written again is unchanged.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from core.errors import UserError
from core.limits import MAX_IMAGE_SIDE as MAX_SIDE, image_size_problem
from core.names import member_name_problem, name_problem

SHA256 = re.compile(r"[0-9a-f]{64}")
KINDS = ("trained", "imported")
_FIELDS = ("name", "kind", "arch", "classes", "weights", "sha256", "input", "split", "metrics", "config",
           "created", "run", "val_probs", "ema", "imported")
_TYPES = {"name": str, "arch": str, "classes": list, "weights": str, "sha256": str, "input": dict, "split": dict,
          "metrics": dict, "config": str, "created": str}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def relative_path_problem(value: str) -> str | None:
    """Why `value` is not a portable path inside the registry's folder, or None if it is."""
    if not value:
        return "is empty"
    if "\\" in value or PureWindowsPath(value).drive or PurePosixPath(value).is_absolute():
        return "must be a relative POSIX path (written by the pipeline, relative to the registry file)"
    if ".." in PurePosixPath(value).parts:
        return "may not contain '..': entries point only inside the registry's folder"
    return None


@dataclass(frozen=True)
class InputSpec:
    """How a member's images are prepared: size [height, width], normalisation, resize filter."""
    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    extra: dict = field(default_factory=dict)

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
class SplitRef:
    """The split file a member was validated on: its name, its sha256 when trained, and the fold."""
    name: str
    sha256: str
    fold: int | None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, value: dict) -> SplitRef:
        if not isinstance(value.get("name"), str) or not value["name"]:
            raise ValueError("needs a 'name'")
        problem = name_problem(value["name"])  # it names splits/<name>.csv
        if problem:
            raise ValueError(f"'name' {value['name']!r} {problem}")
        if not isinstance(value.get("sha256"), str) or not SHA256.fullmatch(value["sha256"]):
            raise ValueError("'sha256' must be 64 lowercase hex characters")
        fold = value.get("fold")
        if fold is not None and not (isinstance(fold, int) and not isinstance(fold, bool) and fold >= 0):
            raise ValueError("'fold' must be a non-negative integer or null")
        extra = {k: v for k, v in value.items() if k not in ("name", "sha256", "fold")}
        return cls(value["name"], value["sha256"], fold, extra)

    def to_dict(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "fold": self.fold, **self.extra}


@dataclass(frozen=True)
class WeightsRef:
    """A second set of weights (the EMA copy): a relative path and its sha256."""
    weights: str
    sha256: str

    @classmethod
    def from_dict(cls, value: Any) -> WeightsRef | None:
        if value is None:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("weights"), str):
            raise ValueError("must be null or a mapping with 'weights' and 'sha256'")
        if not isinstance(value.get("sha256"), str) or not SHA256.fullmatch(value["sha256"]):
            raise ValueError("'sha256' must be 64 lowercase hex characters")
        problem = relative_path_problem(value["weights"])
        if problem:
            raise ValueError(f"'weights' {problem}")
        return cls(value["weights"], value["sha256"])

    def to_dict(self) -> dict:
        return {"weights": self.weights, "sha256": self.sha256}


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


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    arch: str
    classes: list[str]
    input: InputSpec
    split: SplitRef
    metrics: dict[str, float]
    config: str                       # relative path of the merged config.yaml
    created: str
    weights: str | None = None        # relative path; None for an imported member
    sha256: str | None = None
    kind: str = "trained"
    run: str | None = None
    val_probs: str | None = None
    ema: WeightsRef | None = None
    imported: dict | None = None      # {reference, tta} for an imported member
    extra: dict = field(default_factory=dict)  # fields later stages add (git, tracking, composite, ...)

    @property
    def is_imported(self) -> bool:
        return self.kind == "imported"

    @property
    def size(self) -> tuple[int, int]:
        return self.input.size

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RegistryEntry:
        """Check one entry; a problem is one line that names the entry and the field at fault."""
        if not isinstance(data, dict):
            raise UserError(f"{where} must be a mapping, got {type(data).__name__}")
        label = f"{where} ('{data.get('name', '?')}')"
        kind = data.get("kind", "trained")
        if kind not in KINDS:
            raise UserError(f"{label} field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
        required = dict(_TYPES)
        if kind == "imported":  # predictions only: no weights of their own
            required.pop("weights")
            required.pop("sha256")
        for key, typ in required.items():
            if key not in data:
                raise UserError(f"{label} is missing field '{key}'")
            if not isinstance(data[key], typ):
                raise UserError(f"{label} field '{key}' must be a {typ.__name__}, got {type(data[key]).__name__}")
        for key in ("run", "val_probs"):
            if key in data and not isinstance(data[key], str):
                raise UserError(f"{label} field '{key}' must be a str, got {type(data[key]).__name__}")
        current = "name"
        try:
            name = data["name"]
            problem = member_name_problem(name)  # the one rule, shared with the config and imports
            if problem:
                raise ValueError(problem)
            current = "sha256"
            if kind == "trained" and not SHA256.fullmatch(data["sha256"]):
                raise ValueError(f"must be 64 lowercase hex characters, got {data['sha256'][:20]!r}")
            current = "classes"
            classes = _classes(data["classes"])
            current = "input"
            spec = InputSpec.from_dict(data["input"])
            current = "split"
            split = SplitRef.from_dict(data["split"])
            current = "metrics"
            metrics = _metrics(data["metrics"])
            for current in ("weights", "config", "run", "val_probs"):
                if data.get(current) is not None or (current == "weights" and kind == "trained"):
                    problem = relative_path_problem(data[current])
                    if problem:
                        raise ValueError(problem)
            current = "ema"
            ema = WeightsRef.from_dict(data.get("ema"))
            current = "imported"
            imported = data.get("imported")
            if kind == "imported" and not (isinstance(imported, dict) and isinstance(imported.get("reference"), str)):
                raise ValueError("must name the 'reference' member the predictions were checked against")
        except ValueError as err:
            raise UserError(f"{label} field '{current}' {err}") from None
        extra = {k: v for k, v in data.items() if k not in _FIELDS}
        entry = cls(name=name, arch=data["arch"], classes=classes, input=spec, split=split, metrics=metrics,
                    config=data["config"], created=data["created"], weights=data.get("weights"),
                    sha256=data.get("sha256"), kind=kind, run=data.get("run"), val_probs=data.get("val_probs"),
                    ema=ema, imported=imported, extra=extra)
        object.__setattr__(entry, "_order", tuple(data))  # written back in the order it was read
        return entry

    def to_dict(self) -> dict:
        values = {"name": self.name, "kind": self.kind, "arch": self.arch, "classes": list(self.classes),
                  "weights": self.weights, "sha256": self.sha256, "input": self.input.to_dict(),
                  "split": self.split.to_dict(), "metrics": dict(self.metrics), "config": self.config,
                  "created": self.created, "run": self.run, "val_probs": self.val_probs,
                  "ema": self.ema.to_dict() if self.ema else None, "imported": self.imported, **self.extra}
        order = getattr(self, "_order", None) or tuple(values)
        present = [k for k in order if k in values] + [k for k in values if k not in order]
        # Optional fields that were never set stay out of the file, as they did before the type existed.
        optional = {"kind": "trained", "run": None, "val_probs": None, "imported": None, "weights": None,
                    "sha256": None, "ema": None}
        return {k: values[k] for k in present if k in order or k not in optional or values[k] != optional[k]}


def as_entry(entry: RegistryEntry | dict, where: str = "registry entry") -> RegistryEntry:
    """A typed entry from either form (callers that still hold the stored mapping pass it as is)."""
    return entry if isinstance(entry, RegistryEntry) else RegistryEntry.from_dict(entry, where)
