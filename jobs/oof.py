"""The oof job: assemble a fold group's out-of-fold predictions into one file and score each fold."""
from __future__ import annotations

from pathlib import Path

from sklearn.metrics import accuracy_score, f1_score

from core.errors import UserError
from core.registry import Registry
from core.settings import Settings
from predict.oof import assemble_oof, fold_group, save_oof


def oof_command(prefix: str | None, split: str | None, out: str | None, overwrite: bool, registry_path: str | None,
                settings: Settings) -> list[str]:
    """Write the OOF file; return the lines that describe it."""
    lines: list[str] = []
    registry = Registry.chosen(registry_path, settings)
    entries = fold_group(registry.members(), prefix, split)
    split_file = settings.splits / f"{entries[0].split.name}.csv"
    oof = assemble_oof(entries, registry, split_file if split_file.exists() else None)
    out = Path(out or settings.output_root / "oof" / f"{(prefix or split).rstrip('-_')}.npz")
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite to replace it")
    save_oof(oof, out)

    labels = list(range(len(oof.classes)))
    pred = oof.probs.argmax(1)
    lines.append(f"out-of-fold predictions of {oof.arch} on split '{oof.split['name']}' ({oof.split['n_folds']} folds)")
    for fold, name in enumerate(oof.members):
        rows = oof.folds == fold
        lines.append(f"  fold {fold}  {name:<32} {int(rows.sum()):>7} rows  macro F1 "
              f"{f1_score(oof.labels[rows], pred[rows], average='macro', labels=labels, zero_division=0):.4f}")
    lines.append(f"  all folds {len(oof.ids):>38} rows  macro F1 "
          f"{f1_score(oof.labels, pred, average='macro', labels=labels, zero_division=0):.4f}  "
          f"accuracy {accuracy_score(oof.labels, pred):.4f}")
    lines.append(f"written: {out}" + ("" if split_file.exists() else f"  (split file {split_file} not found: rows "
                                                              "are in fold order and coverage was not checked)"))
    return lines
