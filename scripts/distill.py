"""Distil a saved ensemble recipe into one student member, registered like any other.

    python -m scripts.distill --recipe submissions/NAME.recipe.yaml --config STUDENT.yaml [key=value ...]
    python -m scripts.distill --recipe submissions/NAME.recipe.yaml --resume runs/<date>/<run>_incomplete
    torchrun --nproc_per_node=N -m scripts.distill --recipe … --config …     (the student on N GPUs/processes)

The loss is distill.alpha * KL(teacher_T || student_T) * T^2 + (1 - distill.alpha) * CE(labels), with
T = distill.temperature. The teacher's probabilities on the training rows come from the prediction
cache (the recipe's members predict a `train` split, in-sample), combined exactly as the vote does.
"""
from __future__ import annotations

import argparse
import sys

from core.cli import add_registry, check_new_or_resumed
from core.console import console_logging
from core.errors import cli_entry
from core.settings import load_settings


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.distill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True, help="the teacher: a recipe saved by scripts.vote")
    parser.add_argument("--config", help="the student's member YAML config (not with --resume)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides such as distill.alpha=0.5 name=student")
    parser.add_argument("--resume", metavar="RUN_FOLDER", help="continue an interrupted student run")
    parser.add_argument("--stop-after-epoch", type=int, metavar="N", help="pause after epoch N (resume later)")
    parser.add_argument("--tta", nargs="?", const="flip", default="none", metavar="VIEWS",
                        help="test-time views of the teacher's members on the training rows (alone: flip)")
    parser.add_argument("--device", default="auto", help="where the teacher's members predict (default: auto)")
    parser.add_argument("--batch-size", type=int, default=256, help="the teacher's prediction batch size")
    add_registry(parser)
    args = parser.parse_args(argv)
    check_new_or_resumed(args, "student")
    return args


@cli_entry
def main(argv: list[str]) -> int:
    args = parse(argv)
    # lazy: the job imports torch, timm, scikit-learn and matplotlib; --help must not wait for them
    from jobs.distill import DistillRequest, distill_command
    console_logging()
    outcome = distill_command(DistillRequest(
        recipe=args.recipe, config=args.config, overrides=args.overrides, registry=args.registry,
        resume=args.resume, stop_after_epoch=args.stop_after_epoch, tta=args.tta, device=args.device,
        batch_size=args.batch_size), load_settings())
    if outcome.message:
        print(outcome.message, file=sys.stderr if outcome.to_stderr else sys.stdout)
    return outcome.code


if __name__ == "__main__":
    raise SystemExit(main())
