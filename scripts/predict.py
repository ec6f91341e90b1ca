"""Predict validation and test rows for registered members into the prediction cache.

    python -m scripts.predict --members digits-resnet18 digits-regnet [--tta] [--force]
"""
from __future__ import annotations

import argparse

from core.errors import cli_entry
from core.registry import Registry
from core.settings import load_settings
from members.train import console_logging
from predict.run import predict_members


@cli_entry
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", nargs="+", required=True, help="member names from the registry")
    parser.add_argument("--splits", nargs="+", default=["val", "test"], choices=["val", "test"])
    parser.add_argument("--tta", action="store_true", help="average with the horizontally flipped view")
    parser.add_argument("--force", action="store_true", help="recompute even when the cache is fresh")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--registry", help="registry file (default: <output root>/registry.yaml)")
    args = parser.parse_args(argv)
    console_logging()
    settings = load_settings()
    registry = Registry(args.registry or settings.registry)
    results = predict_members(args.members, registry, settings, splits=args.splits, tta=args.tta, force=args.force,
                              device=args.device, batch_size=args.batch_size)
    for name, splits in results.items():
        print(f"{name}: " + ", ".join(f"{split} {len(p.ids)} rows" for split, p in splits.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
