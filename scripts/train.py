"""Train one ensemble member and register it.

    python -m scripts.train --config configs/digits/resnet18.yaml [key=value ...] [--smoke]
"""
from __future__ import annotations

import argparse

from core.errors import cli_entry
from core.settings import load_settings
from members.config import load_config
from members.train import console_logging, train_member


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="member YAML config")
    parser.add_argument("overrides", nargs="*", help="dotted overrides such as train.epochs=3 name=r18-s1")
    parser.add_argument("--smoke", action="store_true",
                        help="run the whole path on a few batches into runs/_smoke; register nothing")
    parser.add_argument("--registry", help="registry file (default: <output root>/registry.yaml)")
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str]) -> int:
    args = parse(argv)
    console_logging()
    config = load_config(args.config, args.overrides)
    run_dir, entry = train_member(config, load_settings(), smoke=args.smoke, registry_path=args.registry)
    if entry is None:
        print(f"smoke run OK: {run_dir} (nothing registered)")
    else:
        m = entry["metrics"]
        print(f"registered {entry['name']}: val_f1_macro {m['val_f1_macro']:.4f}, val_acc {m['val_acc']:.4f} "
              f"(best epoch {m['best_epoch']}) → {run_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
