"""The end-to-end demo on the embedded digits data, on CPU, in a few minutes.

Trains three members (two timm architectures and a torchvision one), registers
them, predicts validation and test rows, votes hard and soft, writes the
submission and the report, and scores the submission on the held-out labels.
"""
from __future__ import annotations

import argparse

from core.console import console_logging
from core.errors import cli_entry
from core.settings import load_settings


@cli_entry
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__)
    parser.add_argument("overrides", nargs="*", help="overrides applied to every member, e.g. train.epochs=2")
    args = parser.parse_args(argv)
    # lazy: the job imports torch, timm, scikit-learn and matplotlib; --help must not wait for them
    from jobs.demo import DemoRequest, demo
    console_logging()
    for line in demo(DemoRequest(args.overrides), load_settings()).lines:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
