"""One registry entry, typed: every field is checked once, inside the types below.

An entry is what every later stage knows about a member: where its weights and config are,
which classes it predicts, how its input is prepared, and which validation rows it was
scored on. Two kinds exist:
- `trained` (the default): a member trained here, with a weights file and its sha256;
- `imported`: predictions made elsewhere (`scripts.predict import`), which vote like a
  member but have no weights; they borrow the split and config of the member they were
  checked against (`imported.reference`).

Every field, required or optional, is a typed attribute; code reads `entry.split.fold`,
never `entry["split"]["fold"]` (tests/test_entry_reads.py counts raw reads with `ast`).
`to_dict()` gives back the mapping stored in registry.yaml, unknown fields and key order
included, so an entry read and written again is unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.entry_parts import (  # noqa: F401  (re-exported: callers name the parts through core.entry)
    SHA256,
    SHA256_RULE,
    DistilledFrom,
    ImportedRef,
    InputSpec,
    OriginRef,
    SplitRef,
    Tracking,
    WeightsRef,
    _classes,
    _emit,
    _mapping_or_none,
    _metrics,
    _Ordered,
    is_sha256,
    relative_path_problem,
    weights_origin_problem,
)
from core.entry_refs import CorrectionsRef, InferenceCost, PseudoRef, TaskRef
from core.errors import UserError
from core.names import member_name_problem

KINDS = ("trained", "imported")
_TYPES = {"name": str, "arch": str, "classes": list, "weights": str, "sha256": str, "input": dict, "split": dict,
          "metrics": dict, "config": str, "created": str}
_OPTIONAL_STR = ("run", "val_probs", "git", "pretrained")



@dataclass(frozen=True)
class RegistryEntry(_Ordered):
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
    run: str | None = None            # relative path of the run folder
    val_probs: str | None = None      # relative path of the best epoch's validation probabilities
    ema: WeightsRef | None = None
    imported: ImportedRef | None = None       # for an imported member: what it was checked against
    weights_origin: OriginRef | None = None   # where the starting weights came from
    distilled_from: DistilledFrom | None = None
    composite: dict | None = None     # task layout ({tasks: [{name, size}, ...]}) for per-task votes
    tracking: Tracking | None = None
    git: str | None = None            # the code revision it was trained with
    pretrained: str | None = None     # the starting point, as the training log said it
    data: dict | None = None          # {source, root, test} of the training config
    corrections: CorrectionsRef | None = None  # data.corrections the member trained with (label audit)
    pseudo: PseudoRef | None = None   # the pseudo-label set it also trained on (data.pseudo / distill.unlabeled)
    task: TaskRef | None = None       # a task member: trained on one task of a composite label
    inference: InferenceCost | None = None  # measured ms per image when it last predicted (vote --budget-ms)
    extra: dict = field(default_factory=dict)  # fields this version does not know, kept as read

    @property
    def is_imported(self) -> bool:
        return self.kind == "imported"

    @property
    def size(self) -> tuple[int, int]:
        return self.input.size

    @property
    def group(self) -> str | None:
        """The ensemble (wandb group) the member was trained for, if it recorded one."""
        return self.tracking.group if self.tracking else None

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RegistryEntry:
        """Check one entry; a problem is one line that names the entry and the field at fault."""
        if not isinstance(data, dict):
            raise UserError(f"{where} must be a mapping, got {type(data).__name__}")
        label = f"{where} ('{data.get('name', '?')}')"
        kind = data.get("kind", "trained")
        if kind not in KINDS:
            raise UserError(f"{label} field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
        _check_types(data, kind, label)
        current = "name"
        try:
            checked = {}
            for current, read in _READERS:
                checked[current] = read(data, kind)
        except ValueError as err:
            text = str(err)
            raise UserError(f"{label} field '{current}'{'' if text.startswith(':') else ' '}{text}") from None
        extra = {k: v for k, v in data.items() if k not in _KNOWN}
        return cls(name=data["name"], arch=data["arch"], config=data["config"], created=data["created"],
                   weights=data.get("weights"), sha256=data.get("sha256"), kind=kind, run=data.get("run"),
                   val_probs=data.get("val_probs"), git=data.get("git"), pretrained=data.get("pretrained"),
                   extra=extra, **{k: v for k, v in checked.items() if k not in _PATHS})._remember(data)

    @classmethod
    def new(cls, data: Any) -> RegistryEntry:
        """An entry a job has just built, checked like one read from the file."""
        return cls.from_dict(data, f"new entry '{data.get('name', '?') if isinstance(data, dict) else '?'}'")

    def to_dict(self) -> dict:
        values = {"name": self.name, "kind": self.kind, "arch": self.arch, "classes": list(self.classes),
                  "weights": self.weights, "sha256": self.sha256, "input": self.input.to_dict(),
                  "split": self.split.to_dict(), "metrics": dict(self.metrics), "config": self.config,
                  "created": self.created, "run": self.run, "val_probs": self.val_probs,
                  "ema": self.ema.to_dict() if self.ema else None,
                  "imported": self.imported.to_dict() if self.imported else None,
                  "weights_origin": self.weights_origin.to_dict() if self.weights_origin else None,
                  "distilled_from": self.distilled_from.to_dict() if self.distilled_from else None,
                  "composite": self.composite, "tracking": self.tracking.to_dict() if self.tracking else None,
                  "git": self.git, "pretrained": self.pretrained, "data": self.data,
                  "corrections": self.corrections.to_dict() if self.corrections else None,
                  "pseudo": self.pseudo.to_dict() if self.pseudo else None,
                  "task": self.task.to_dict() if self.task else None,
                  "inference": self.inference.to_dict() if self.inference else None, **self.extra}
        # Optional fields that were never set stay out of the file, as they did before the type existed.
        optional = {"kind": "trained", **dict.fromkeys(_OPTIONAL_FIELDS)}
        return _emit(values, self.order or tuple(k for k in values if k not in optional), optional)

    def imported_as(self, name: str, classes: list[str], tta: str | None) -> RegistryEntry:
        """The entry of predictions imported under `name` and checked against this member: they borrow its
        split, input, config and data, and have no weights, run folder or metrics of their own."""
        borrowed = {k: v for k, v in self.to_dict().items() if k not in _NOT_BORROWED}
        return RegistryEntry.from_dict(borrowed | {
            "name": name, "kind": "imported", "arch": "imported", "classes": list(classes), "metrics": {},
            "imported": {"reference": self.name, "tta": tta}}, f"imported member '{name}'")


def _check_types(data: dict, kind: str, label: str) -> None:
    required = dict(_TYPES)
    if kind == "imported":  # predictions only: no weights of their own
        required.pop("weights")
        required.pop("sha256")
    for key, typ in required.items():
        if key not in data:
            raise UserError(f"{label} is missing field '{key}'")
        if not isinstance(data[key], typ):
            raise UserError(f"{label} field '{key}' must be a {typ.__name__}, got {type(data[key]).__name__}")
    for key in _OPTIONAL_STR:
        if data.get(key) is not None and not isinstance(data[key], str):
            raise UserError(f"{label} field '{key}' must be a str, got {type(data[key]).__name__}")


def _name(data: dict, kind: str) -> str:
    problem = member_name_problem(data["name"])  # the one rule, shared with the config and imports
    if problem:
        raise ValueError(problem)
    return data["name"]


def _sha256(data: dict, kind: str) -> str | None:
    if kind == "trained" and not is_sha256(data["sha256"]):
        raise ValueError(f"must be {SHA256_RULE}, got {data['sha256'][:20]!r}")
    return data.get("sha256")


def _path(key: str):
    def read(data: dict, kind: str) -> str | None:
        if data.get(key) is not None or (key == "weights" and kind == "trained"):
            problem = relative_path_problem(data[key])
            if problem:
                raise ValueError(problem)
        return data.get(key)
    return read


# Each field with what checks it, in the order problems are reported.
_READERS = (
    ("name", _name),
    ("sha256", _sha256),
    ("classes", lambda d, k: _classes(d["classes"])),
    ("input", lambda d, k: InputSpec.from_dict(d["input"])),
    ("split", lambda d, k: SplitRef.from_dict(d["split"])),
    ("metrics", lambda d, k: _metrics(d["metrics"])),
    *((key, _path(key)) for key in ("weights", "config", "run", "val_probs")),
    ("ema", lambda d, k: WeightsRef.from_dict(d.get("ema"))),
    ("imported", lambda d, k: ImportedRef.from_dict(d.get("imported"), k)),
    ("weights_origin", lambda d, k: OriginRef.from_dict(d.get("weights_origin"))),
    ("distilled_from", lambda d, k: DistilledFrom.from_dict(d.get("distilled_from"))),
    ("composite", lambda d, k: _mapping_or_none(d.get("composite"), "the task layout")),
    ("tracking", lambda d, k: Tracking.from_dict(d.get("tracking"))),
    ("data", lambda d, k: _mapping_or_none(d.get("data"), "source, root, test")),
    ("corrections", lambda d, k: CorrectionsRef.from_dict(d.get("corrections"))),
    ("pseudo", lambda d, k: PseudoRef.from_dict(d.get("pseudo"))),
    ("task", lambda d, k: TaskRef.from_dict(d.get("task"))),
    ("inference", lambda d, k: InferenceCost.from_dict(d.get("inference"))),
)
_NOT_BORROWED = ("run", "val_probs", "tracking", "metrics", "weights", "sha256", "ema", "kind", "inference")
_PATHS = ("name", "sha256", "weights", "config", "run", "val_probs")
_OPTIONAL_FIELDS = ("run", "val_probs", "imported", "weights", "sha256", "ema", "weights_origin", "distilled_from",
                    "composite", "tracking", "git", "pretrained", "data", "corrections", "pseudo", "task", "inference")
_KNOWN = frozenset(_TYPES) | {"kind", *_OPTIONAL_FIELDS}
