"""Check a data set before training on it: counts, imbalance, bad files, duplicates, leaks, sizes.

    python -m scripts.check_data --config configs/mask/resnet18.yaml [key=value ...]
    python -m scripts.check_data --source mask --root PATH [--test PATH] [--split NAME] [--n-folds 5]

The split checked is `--split` (a name under <output root>/splits/ or a CSV path), else the
config's split file when it exists; otherwise the folds are previewed (grouping duplicates as
data.duplicates says) without being written. Exact and near-duplicate sets are listed with how
many span folds now and after grouping, and the train-test overlap; `--sheet FILE` draws the
near pairs, weakest match first, to judge data.near_duplicate_distance by eye.
Exits 1 on a leak (a group in two folds, or copies of a picture in two folds, unless
--allow-duplicate-leaks), a split file that does not fit the data, a bad training file under
data.on_bad_image=error, or any bad test file; 2 on a usage error.
"""
from __future__ import annotations

import argparse

from core.console import console_logging
from core.errors import cli_entry
from core.extensions import DATA_SOURCES
from core.settings import load_settings


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.check_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="member YAML config whose data section is checked")
    parser.add_argument("overrides", nargs="*", help="dotted overrides such as data.root=/data/mask")
    parser.add_argument("--source", help=f"{' | '.join(DATA_SOURCES.listed())} (instead of --config)")
    parser.add_argument("--root", help="data root for --source (a CSV file for csv)")
    parser.add_argument("--test", help="test list: an info.csv or a folder of images")
    parser.add_argument("--split", help="split name under <output root>/splits/, or a split CSV path")
    parser.add_argument("--n-folds", type=int, help="folds for a previewed split (default: the config's)")
    parser.add_argument("--on-bad-image", choices=["error", "skip"], help="policy to judge bad files by")
    parser.add_argument("--duplicates", choices=["exact", "near", "off"],
                        help="data.duplicates for a previewed split (default: the config's, near)")
    parser.add_argument("--sheet", metavar="FILE", help="write a contact-sheet PNG of the near-duplicate pairs")
    parser.add_argument("--allow-duplicate-leaks", action="store_true",
                        help="report copies that span folds without failing (exit 0)")
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str]) -> int:
    args = parse(argv)
    # lazy: the job imports pandas, scikit-learn and PIL; --help must not wait for them
    from jobs.check_data import CheckDataRequest, check_data
    console_logging()
    request = CheckDataRequest(
        config=args.config, source=args.source, root=args.root, overrides=args.overrides, test=args.test,
        split=args.split, n_folds=args.n_folds, on_bad_image=args.on_bad_image, duplicates=args.duplicates,
        sheet=args.sheet, allow_duplicate_leaks=args.allow_duplicate_leaks)
    return check_data(request, load_settings()).code


if __name__ == "__main__":
    raise SystemExit(main())
