"""Assemble out-of-fold predictions from members trained on every fold of one split.

    python -m scripts.oof --prefix mask-r18-f [--split NAME] [--out oof/NAME.npz] [--overwrite]

The members are chosen by name prefix and/or split name; they must share one
architecture and one split file, and cover each of its folds exactly once.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sklearn.metrics import accuracy_score, f1_score

from core.errors import UserError, cli_entry
from core.registry import Registry
from core.settings import load_settings
from ensemble.oof import assemble_oof, fold_group, save_oof


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.oof", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefix", help="member-name prefix shared by the fold group, e.g. mask-r18-f")
    parser.add_argument("--split", help="split name the fold group was trained on")
    parser.add_argument("--out", help="output npz (default: <output root>/oof/<prefix or split>.npz)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--registry", help="registry file (default: <output root>/registry.yaml)")
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str]) -> int:
    args = parse(argv)
    settings = load_settings()
    registry = Registry(args.registry or settings.registry)
    entries = fold_group(registry.members(), args.prefix, args.split)
    split_file = settings.splits / f"{entries[0]['split']['name']}.csv"
    oof = assemble_oof(entries, registry, split_file if split_file.exists() else None)
    out = Path(args.out or settings.output_root / "oof" / f"{(args.prefix or args.split).rstrip('-_')}.npz")
    if out.exists() and not args.overwrite:
        raise UserError(f"{out} already exists; pass --overwrite to replace it")
    save_oof(oof, out)

    labels = list(range(len(oof.classes)))
    pred = oof.probs.argmax(1)
    print(f"out-of-fold predictions of {oof.arch} on split '{oof.split['name']}' ({oof.split['n_folds']} folds)")
    for fold, name in enumerate(oof.members):
        rows = oof.folds == fold
        print(f"  fold {fold}  {name:<32} {int(rows.sum()):>7} rows  macro F1 "
              f"{f1_score(oof.labels[rows], pred[rows], average='macro', labels=labels, zero_division=0):.4f}")
    print(f"  all folds {len(oof.ids):>38} rows  macro F1 "
          f"{f1_score(oof.labels, pred, average='macro', labels=labels, zero_division=0):.4f}  "
          f"accuracy {accuracy_score(oof.labels, pred):.4f}")
    print(f"written: {out}" + ("" if split_file.exists() else f"  (split file {split_file} not found: rows "
                                                              "are in fold order and coverage was not checked)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
