"""Assemble out-of-fold predictions from members trained on every fold of one split.

    python -m scripts.oof --prefix mask-r18-f [--split NAME] [--out oof/NAME.npz] [--overwrite]

The members are chosen by name prefix and/or split name; they must share one
architecture and one split file, and cover each of its folds exactly once.
"""
from __future__ import annotations

import argparse

from core.cli import add_registry
from core.errors import cli_entry
from core.settings import load_settings


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.oof", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefix", help="member-name prefix shared by the fold group, e.g. mask-r18-f")
    parser.add_argument("--split", help="split name the fold group was trained on")
    parser.add_argument("--out", help="output npz (default: <output root>/oof/<prefix or split>.npz)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_registry(parser)
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str]) -> int:
    args = parse(argv)
    # lazy: the job imports scikit-learn and pandas; --help must not wait for them
    from jobs.oof import OofRequest, oof_command
    result = oof_command(OofRequest(args.prefix, args.split, args.out, args.overwrite, args.registry), load_settings())
    for line in result.lines:
        print(line)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
