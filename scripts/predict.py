"""Predict validation and test rows for registered members into the prediction cache.

    python -m scripts.predict --members a b c [--tta flip|flip,shift] [--force] [--batch-size 256]
    torchrun --nproc_per_node=N -m scripts.predict --members a b c      # rows split across processes/GPUs
    python -m scripts.predict import --member NAME --split val|test --npz FILE --like REGISTERED_MEMBER

Cached members are skipped (the key is the weights' sha256, the data fingerprint, the TTA
views and the decoder); --force recomputes. `import` checks predictions made elsewhere
against a registered member's rows and classes and stores them, so they can be voted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import UserError, cli_entry
from core.console import console_logging
from core.settings import load_settings
from jobs.predict import DECODERS, SPLITS, VIEW_HELP, import_command, predict_command


def _predict_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", nargs="+", required=True, help="member names from the registry")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    views = "; ".join(f"{k}: {v}" for k, v in VIEW_HELP.items())
    parser.add_argument("--tta", nargs="?", const="flip", default="none", metavar="VIEWS",
                        help=f"test-time views merged with equal weights, comma-separated ({views}); "
                             f"--tta alone means flip; default none")
    parser.add_argument("--force", action="store_true", help="recompute even when the cache is fresh")
    parser.add_argument("--device", default="auto", help="auto (under torchrun: one GPU per process), cpu, cuda:N")
    parser.add_argument("--batch-size", type=int, default=256, help="halved automatically when memory runs out")
    parser.add_argument("--decoder", choices=DECODERS, default="pil",
                        help="pil: decode once into the uint8 cache (default); nvjpeg: decode JPEGs on the GPU")
    parser.add_argument("--registry", help="registry file (default: <output root>/registry.yaml)")
    return parser


def _import_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.predict import",
                                     description="Check foreign predictions and store them in the prediction cache.")
    parser.add_argument("--member", required=True, help="the name the imported predictions vote under")
    parser.add_argument("--split", required=True, choices=SPLITS)
    parser.add_argument("--npz", required=True, type=Path, help="file with ids, probs, classes (see README)")
    parser.add_argument("--like", required=True,
                        help="registered member whose classes and rows (validation fold / test list) must match")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier imported predictions")
    parser.add_argument("--registry", help="registry file (default: <output root>/registry.yaml)")
    return parser


def _import(argv: list[str]) -> int:
    args = _import_parser().parse_args(argv)
    print(import_command(args.member, args.split, args.npz, args.like, args.overwrite, args.registry, load_settings()))
    return 0


@cli_entry
def main(argv: list[str]) -> int:
    if argv and argv[0] == "import":
        return _import(argv[1:])
    args = _predict_parser().parse_args(argv)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, not {args.batch_size}")
    console_logging()
    lines = predict_command(args.members, load_settings(), args.registry, args.splits, args.tta, args.force,
                            args.device, args.batch_size, args.decoder)
    for line in lines:
        print(line)
    sys.stdout.flush()
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
