"""The end-to-end demo on the embedded digits data, on CPU, in a few minutes.

Trains three members (two timm architectures and a torchvision one), registers
them, predicts validation and test rows, votes hard and soft, writes the
submission and the report, and scores the submission on the held-out labels.
"""
from __future__ import annotations

import argparse
import time

from core.errors import cli_entry
from core.registry import Registry
from core.settings import REPO_ROOT, load_settings
from members.config import load_config
from members.data.digits import ensure_digits
from members.train import console_logging, train_member
from scripts import vote

CONFIGS = ["resnet18.yaml", "regnetx_002.yaml", "tv_resnet18.yaml"]


@cli_entry
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__)
    parser.add_argument("overrides", nargs="*", help="overrides applied to every member, e.g. train.epochs=2")
    args = parser.parse_args(argv)
    console_logging()
    started = time.perf_counter()
    settings = load_settings()
    ensure_digits(settings.data_root / "digits")
    registry = Registry(settings.registry)
    names = []
    for file in CONFIGS:
        config = load_config(REPO_ROOT / "configs" / "digits" / file, args.overrides)
        if registry.exists(config.name):
            registry.remove(config.name)
            print(f"demo: replacing the previous '{config.name}' entry (its run folder is kept)")
        print(f"\n=== training {config.name} ({config.model.arch}) ===")
        train_member(config, settings)
        names.append(config.name)
    print("\n=== voting ===")
    code = vote.main(["--members", *names, "--name", "digits-demo", "--overwrite", "--compare"])
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; registry: {registry.path}")
    if code == 0:
        # The last line is the page to open: the whole report in one self-contained file.
        print(f"report: {settings.output_root / 'reports' / 'digits-demo' / 'report.html'}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
