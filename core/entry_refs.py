"""Typed references a registry entry may carry: its measured inference cost (predict/), and how its training data was shaped:
the label corrections it trained with (scripts.audit), the pseudo-labelled test rows it also trained
on (scripts.pseudo), and the one task of a composite label a task member predicts (data.task)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from core.entry_parts import SHA256, _is_number


@dataclass(frozen=True)
class CorrectionsRef:
    """The corrections file a member's labels went through (imagedata/corrections.py): its identity and counts."""
    file: str
    sha256: str
    keep: int = 0
    relabel: int = 0
    drop: int = 0
    changed: int = 0

    @classmethod
    def from_dict(cls, value: Any) -> CorrectionsRef | None:
        if value is None:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("file"), str):
            raise ValueError("must be null or a mapping with 'file', 'sha256' and counts")
        if not isinstance(value.get("sha256"), str) or not SHA256.fullmatch(value["sha256"]):
            raise ValueError("'sha256' must be 64 lowercase hex characters")
        counts = {k: value.get(k, 0) for k in ("keep", "relabel", "drop", "changed")}
        for key, count in counts.items():
            if not (isinstance(count, int) and not isinstance(count, bool) and count >= 0):
                raise ValueError(f"'{key}' must be a non-negative integer")
        return cls(value["file"], value["sha256"], **counts)

    def to_dict(self) -> dict:
        return {"file": self.file, "sha256": self.sha256, "keep": self.keep, "relabel": self.relabel,
                "drop": self.drop, "changed": self.changed}


@dataclass(frozen=True)
class PseudoRef:
    """The pseudo-label set a member also trained on (scripts.pseudo): which set, exactly (the sha256 of its
    teacher file), its threshold and how many test images joined the training rows; `extra` keeps the
    fold, mode, weight and the teacher recipe."""
    name: str
    sha256: str
    threshold: float
    rows: int
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, value: Any) -> PseudoRef | None:
        if value is None:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise ValueError("must be null or a mapping with 'name', 'sha256', 'threshold' and 'rows'")
        if not isinstance(value.get("sha256"), str) or not SHA256.fullmatch(value["sha256"]):
            raise ValueError("'sha256' must be 64 lowercase hex characters")
        threshold, rows = value.get("threshold"), value.get("rows")
        if not (_is_number(threshold) and 0 < threshold <= 1):
            raise ValueError("'threshold' must be a number in (0, 1]")
        if not (isinstance(rows, int) and not isinstance(rows, bool) and rows >= 0):
            raise ValueError("'rows' must be a non-negative integer")
        extra = {k: v for k, v in value.items() if k not in ("name", "sha256", "threshold", "rows")}
        return cls(value["name"], value["sha256"], float(threshold), rows, extra)

    def to_dict(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "threshold": self.threshold, "rows": self.rows, **self.extra}


@dataclass(frozen=True)
class TaskRef:
    """A task member's task: its name and the composite layout it is one part of ({tasks: [{name, size}, ...]})."""
    name: str
    of: dict

    @classmethod
    def from_dict(cls, value: Any) -> TaskRef | None:
        if value is None:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not isinstance(value.get("of"), dict):
            # ValueError, as every field check here: from_dict turns it into one line naming the field.
            raise ValueError("must be null or a mapping with 'name' (a task) and 'of' (the composite layout)")  # noqa: TRY004
        tasks = value["of"].get("tasks")
        if not isinstance(tasks, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str)
                                                  and _is_number(t.get("size")) for t in tasks):
            raise ValueError("'of' must look like {tasks: [{name: mask, size: 3}, ...]}")
        if value["name"] not in [t["name"] for t in tasks]:
            raise ValueError(f"names task {value['name']!r}, which is not in its composite layout")
        return cls(value["name"], dict(value["of"]))

    def to_dict(self) -> dict:
        return {"name": self.name, "of": self.of}


@dataclass(frozen=True)
class InferenceCost:
    """A member's measured inference cost when it last predicted: ms per image on `device` at `batch_size`."""
    ms_per_image: float
    device: str
    batch_size: int

    @property
    def images_per_s(self) -> float:
        return 1000.0 / self.ms_per_image

    @classmethod
    def from_dict(cls, value: Any) -> InferenceCost | None:
        if value is None:
            return None
        ms = value.get("ms_per_image") if isinstance(value, dict) else None
        if not _is_number(ms) or not math.isfinite(ms) or ms <= 0:
            raise ValueError("must be null or a mapping with a positive 'ms_per_image', 'device' and 'batch_size'")
        return cls(float(ms), str(value.get("device", "")), int(value.get("batch_size", 0)))

    def to_dict(self) -> dict:
        return {"ms_per_image": self.ms_per_image, "device": self.device, "batch_size": self.batch_size}
