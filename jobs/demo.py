"""The end-to-end demo on the embedded digits data, on CPU, in a few minutes.

Trains three members (two timm architectures and a torchvision one), registers
them, predicts validation and test rows, votes hard and soft, writes the
submission and the report, and scores the submission on the held-out labels.
"""
from __future__ import annotations

import time

from core.config import load_config
from core.registry import Registry
from core.settings import REPO_ROOT, load_settings
from imagedata.digits import ensure_digits
from jobs.train import train_member
from jobs.vote import VoteRequest, print_vote, vote

CONFIGS = ["resnet18.yaml", "regnetx_002.yaml", "tv_resnet18.yaml"]


def demo(overrides: list[str]) -> int:
    started = time.perf_counter()
    settings = load_settings()
    ensure_digits(settings.data_root / "digits")
    registry = Registry(settings.registry)
    names = []
    for file in CONFIGS:
        config = load_config(REPO_ROOT / "configs" / "digits" / file, overrides)
        if registry.exists(config.name):
            registry.remove(config.name)
            print(f"demo: replacing the previous '{config.name}' entry (its run folder is kept)")
        print(f"\n=== training {config.name} ({config.model.arch}) ===")
        train_member(config, settings)
        names.append(config.name)
    print("\n=== voting ===")
    print_vote(vote(VoteRequest(members=names, name="digits-demo", overwrite=True, compare=True), settings))
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; registry: {registry.path}")
    # The last line is the page to open: the whole report in one self-contained file.
    print(f"report: {settings.output_root / 'reports' / 'digits-demo' / 'report.html'}")
    return 0

