"""Predict validation and test rows for registered members into the prediction cache.

    python -m scripts.predict [run] --members a b c [--tta flip|flip,shift] [--force] [--batch-size 256]
    torchrun --nproc_per_node=N -m scripts.predict --members a b c      # rows split across processes/GPUs
    python -m scripts.predict import --member NAME --part val|test --npz FILE --like REGISTERED_MEMBER

Cached members are skipped (the key is the weights' sha256, the data fingerprint, the TTA
views and the decoder); --force recomputes. `import` checks predictions made elsewhere
against a registered member's rows and classes and stores them, so they can be voted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli import add_members, add_overwrite, add_registry
from core.console import console_logging
from core.errors import cli_entry
from core.settings import load_settings
from jobs.choices import DECODERS, PARTS, VIEW_HELP

COMMANDS = ("run", "import")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m scripts.predict", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", metavar="{run,import}")
    run = commands.add_parser("run", help="predict members into the cache (the default command)")
    add_members(run, required=True)
    # "part" is val or test; --split/--splits stay as the old spellings (a split is a split *file* elsewhere).
    run.add_argument("--parts", "--splits", dest="parts", nargs="+", default=list(PARTS), choices=PARTS,
                     help="which rows to predict: val (each member's validation rows) and/or test")
    views = "; ".join(f"{k}: {v}" for k, v in VIEW_HELP.items())
    run.add_argument("--tta", nargs="?", const="flip", default="none", metavar="VIEWS",
                     help=f"test-time views merged with equal weights, comma-separated ({views}); "
                          f"--tta alone means flip; default none")
    run.add_argument("--force", action="store_true", help="recompute even when the cache is fresh")
    run.add_argument("--device", default="auto", help="auto (under torchrun: one GPU per process), cpu, cuda:N")
    run.add_argument("--batch-size", type=int, default=256, help="halved automatically when memory runs out")
    run.add_argument("--decoder", choices=DECODERS, default="pil",
                     help="pil: decode once into the uint8 cache (default); nvjpeg: decode JPEGs on the GPU")
    add_registry(run)
    imp = commands.add_parser("import", help="check foreign predictions and store them in the prediction cache")
    imp.add_argument("--member", required=True, help="the name the imported predictions vote under")
    imp.add_argument("--part", "--split", dest="part", required=True, choices=PARTS,
                     help="which rows the file holds: val or test")
    imp.add_argument("--npz", required=True, type=Path, help="file with ids, probs, classes (see README)")
    imp.add_argument("--like", required=True,
                     help="registered member whose classes and rows (validation fold / test list) must match")
    add_overwrite(imp, "set of imported predictions")
    add_registry(imp)
    return top


def parse(argv: list[str]) -> argparse.Namespace:
    # `run` is the default command, so `python -m scripts.predict --members a b` keeps working.
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):
        argv = ["run", *argv]
    return parser().parse_args(argv)


@cli_entry
def main(argv: list[str]) -> int:
    args = parse(argv)
    # lazy: the job imports pandas, scikit-learn and (to predict) torch; --help must not wait for them
    from jobs.predict import ImportRequest, PredictRequest, import_command, predict_command
    settings = load_settings()
    if args.command == "import":
        print(import_command(ImportRequest(args.member, args.part, args.npz, args.like, args.overwrite, args.registry),
                             settings).line)
        return 0
    console_logging()
    result = predict_command(PredictRequest(args.members, args.parts, args.tta, args.force, args.device,
                                            args.batch_size, args.decoder, args.registry), settings)
    for line in result.lines:
        print(line)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
