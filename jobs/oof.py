"""The oof job: assemble a fold group's out-of-fold predictions into one file and score each fold."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sklearn.metrics import accuracy_score, f1_score

from core.errors import UserError
from core.registry import Registry
from core.settings import Settings
from predict.oof import OOF, assemble_oof, fold_group, save_oof


@dataclass
class OofRequest:
    prefix: str | None = None      # member-name prefix shared by the fold group
    split: str | None = None       # split name the fold group was trained on
    out: str | None = None         # default: <output root>/oof/<prefix or split>.npz
    overwrite: bool = False
    registry: str | None = None


@dataclass
class OofResult:
    path: Path
    lines: list[str] = field(default_factory=list)   # what the file holds, fold by fold


def oof_command(req: OofRequest, settings: Settings) -> OofResult:
    """Write the OOF file; the result's lines describe it."""
    registry = Registry.chosen(req.registry, settings)
    entries = fold_group(registry.members(), req.prefix, req.split)
    split_file = settings.splits / f"{entries[0].split.name}.csv"
    oof = assemble_oof(entries, registry, split_file if split_file.exists() else None)
    out = Path(req.out or settings.output_root / "oof" / f"{(req.prefix or req.split).rstrip('-_')}.npz")
    if out.exists() and not req.overwrite:
        raise UserError(f"{out} already exists; pass --overwrite to replace it")
    save_oof(oof, out)
    lines = score_lines(oof)
    lines.append(f"written: {out}" + ("" if split_file.exists() else f"  (split file {split_file} not found: rows "
                                                                      "are in fold order and coverage was not checked)"))
    return OofResult(out, lines)


def score_lines(oof: OOF) -> list[str]:
    """Macro F1 of each fold's rows and of all of them."""
    labels = list(range(len(oof.classes)))
    pred = oof.probs.argmax(1)
    lines = [f"out-of-fold predictions of {oof.arch} on split '{oof.split['name']}' ({oof.split['n_folds']} folds)"]
    for fold, name in enumerate(oof.members):
        rows = oof.folds == fold
        lines.append(f"  fold {fold}  {name:<32} {int(rows.sum()):>7} rows  macro F1 "
                     f"{f1_score(oof.labels[rows], pred[rows], average='macro', labels=labels, zero_division=0):.4f}")
    lines.append(f"  all folds {len(oof.ids):>38} rows  macro F1 "
                 f"{f1_score(oof.labels, pred, average='macro', labels=labels, zero_division=0):.4f}  "
                 f"accuracy {accuracy_score(oof.labels, pred):.4f}")
    return lines
