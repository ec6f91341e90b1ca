"""Train one ensemble member and register it.

    python -m scripts.train --config configs/digits/resnet18.yaml [key=value ...] [--smoke]
    python -m scripts.train --resume runs/<date>/<run>_incomplete [train.epochs=N ...]
    python -m scripts.train --config ... --predict     (then fill its val and test predictions, same process)
    torchrun --nproc_per_node=N -m scripts.train --config ...      (one member on N GPUs/processes)

SIGINT/SIGTERM saves `last` (weights and the full training state) and exits with
130/143 without registering; `--resume` continues from exactly there.
"""
from __future__ import annotations

import argparse
import sys

from core.cli import add_registry, check_new_or_resumed, extension_help
from core.config import load_config
from core.console import console_logging
from core.errors import UserError, cli_entry
from core.settings import load_settings


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.train", description=__doc__, epilog=extension_help(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="member YAML config (not with --resume: the run folder has its own)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides such as train.epochs=3 name=r18-s1")
    parser.add_argument("--smoke", action="store_true",
                        help="run the whole path on a few batches into runs/_smoke; register nothing")
    add_registry(parser)
    parser.add_argument("--resume", metavar="RUN_FOLDER",
                        help="continue an interrupted run from its last checkpoint (train.epochs=N and similar "
                             "overrides are allowed)")
    parser.add_argument("--stop-after-epoch", type=int, metavar="N",
                        help="pause after epoch N: save last and exit 0; continue later with --resume")
    parser.add_argument("--predict", action="store_true",
                        help="once registered, predict its val and test rows in this process (as scripts.predict "
                             "--members NAME does; what a plan runs)")
    args = parser.parse_args(argv)
    check_new_or_resumed(args, "run")
    if args.resume and args.smoke:
        raise UserError("--smoke cannot be combined with --resume")
    return args


@cli_entry
def main(argv: list[str]) -> int:
    args = parse(argv)
    # A typo in the config file or an override is refused in a second, not after the training stack loads.
    config = load_config(args.config, args.overrides) if args.config else None
    settings = load_settings()
    if config is not None:  # so are a taken name and a data folder that cannot be listed
        from jobs.train_checks import check_before_training

        check_before_training(config, settings, args.registry, smoke=args.smoke)
    # lazy: the job imports torch, timm, scikit-learn and matplotlib; --help must not wait for them
    from jobs.train import TrainRequest, train_command
    from jobs.train_predict import check_request, predict_trained
    console_logging()
    request = TrainRequest(args.config, args.overrides, smoke=args.smoke, registry_path=args.registry,
                           resume=args.resume, stop_after_epoch=args.stop_after_epoch, config=config)
    if args.predict:
        check_request(request)
    outcome = train_command(request, settings)
    if outcome.message:
        print(outcome.message, file=sys.stderr if outcome.to_stderr else sys.stdout)
    if args.predict and outcome.code == 0 and outcome.member is not None:
        sys.stdout.flush()  # the registration line comes before predict's, in a log file too
        for line in predict_trained(outcome.member, request, settings):
            print(line)
    return outcome.code


if __name__ == "__main__":
    raise SystemExit(main())
