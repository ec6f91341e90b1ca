"""Train one ensemble member and register it.

    python -m scripts.train --config configs/digits/resnet18.yaml [key=value ...] [--smoke]
    python -m scripts.train --resume runs/<date>/<run>_incomplete [train.epochs=N ...]
    torchrun --nproc_per_node=N -m scripts.train --config ...      (one member on N GPUs/processes)

SIGINT/SIGTERM saves `last` (weights and the full training state) and exits with
130/143 without registering; `--resume` continues from exactly there.
"""
from __future__ import annotations

import argparse
import sys

from core.errors import UserError, cli_entry
from core.settings import load_settings
from members.config import load_config
from members.interrupts import TrainingStopped
from members.resume import resume_config
from members.train import console_logging, train_member


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="member YAML config (not with --resume: the run folder has its own)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides such as train.epochs=3 name=r18-s1")
    parser.add_argument("--smoke", action="store_true",
                        help="run the whole path on a few batches into runs/_smoke; register nothing")
    parser.add_argument("--registry", help="registry file (default: <output root>/registry.yaml)")
    parser.add_argument("--resume", metavar="RUN_FOLDER",
                        help="continue an interrupted run from its last checkpoint (train.epochs=N and similar "
                             "overrides are allowed)")
    parser.add_argument("--stop-after-epoch", type=int, metavar="N",
                        help="pause after epoch N: save last and exit 0; continue later with --resume")
    args = parser.parse_args(argv)
    if (args.config is None) == (args.resume is None):
        raise UserError("give either --config FILE (a new run) or --resume RUN_FOLDER (continue one)")
    if args.resume and args.smoke:
        raise UserError("--smoke cannot be combined with --resume")
    if args.stop_after_epoch is not None and args.stop_after_epoch < 1:
        raise UserError("--stop-after-epoch must be >= 1")
    return args


@cli_entry
def main(argv: list[str]) -> int:
    args = parse(argv)
    console_logging()
    resume_from = None
    if args.resume:
        resume_from, config = resume_config(args.resume, args.overrides)
    else:
        config = load_config(args.config, args.overrides)
    try:
        run_dir, entry = train_member(config, load_settings(), smoke=args.smoke, registry_path=args.registry,
                                      resume_from=resume_from, stop_after_epoch=args.stop_after_epoch)
    except TrainingStopped as stopped:
        if stopped.run_dir is not None:  # rank 0 (or the only process) speaks for the run
            print(f"{stopped.reason}: saved last checkpoint in {stopped.run_dir}; nothing registered. "
                  f"Continue with: python -m scripts.train --resume {stopped.run_dir}", file=sys.stderr)
        return stopped.exit_code
    if run_dir is None:
        return 0  # a non-zero torchrun rank: rank 0 reports
    if entry is None:
        print(f"smoke run OK: {run_dir} (nothing registered)")
    else:
        m = entry["metrics"]
        print(f"registered {entry['name']}: val_f1_macro {m['val_f1_macro']:.4f}, val_acc {m['val_acc']:.4f} "
              f"(best epoch {m['best_epoch']}) → {run_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
