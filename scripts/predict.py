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
import logging
import sys
from pathlib import Path

from core.errors import UserError, cli_entry
from core.registry import Registry
from core.settings import load_settings
from members.train import console_logging
from predict import shards
from predict.batches import DECODERS
from predict.imports import import_predictions
from predict.run import SPLITS, predict_members
from predict.tta import VIEW_HELP


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
    settings = load_settings()
    registry = Registry(args.registry or settings.registry)
    path = import_predictions(registry, settings, args.member, args.split, args.npz, args.like, args.overwrite)
    print(f"{args.member}: {args.split} predictions checked against '{args.like}' and stored in {path}")
    return 0


@cli_entry
def main(argv: list[str]) -> int:
    if argv and argv[0] == "import":
        return _import(argv[1:])
    args = _predict_parser().parse_args(argv)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, not {args.batch_size}")
    with shards.joined_from_env() as world:
        console_logging()
        if not world.is_main:
            logging.getLogger().setLevel(logging.WARNING)  # one voice; the other ranks speak only of trouble
        settings = load_settings()
        registry = Registry(args.registry or settings.registry)
        results = predict_members(args.members, registry, settings, splits=args.splits, tta=args.tta,
                                  force=args.force, device=args.device, batch_size=args.batch_size,
                                  decoder=args.decoder)
        if world.is_main:
            for name, splits in results.items():
                print(f"{name}: " + ", ".join(f"{split} {len(p.ids)} rows (TTA {p.tta})" for split, p in splits.items()))
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
