"""The end-to-end demo on the embedded digits data, on CPU, in a few minutes.

Trains three members (two timm architectures and a torchvision one), registers
them, predicts validation and test rows, votes hard and soft, writes the
submission and the report, and scores the submission on the held-out labels.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from core.config import load_config
from core.registry import Registry
from core.settings import REPO_ROOT, Settings
from imagedata.digits import ensure_digits
from jobs.train import train_member
from jobs.vote import VoteRequest, print_vote, vote

CONFIGS = ["resnet18.yaml", "regnetx_002.yaml", "tv_resnet18.yaml"]


@dataclass
class DemoRequest:
    overrides: list[str] = field(default_factory=list)   # applied to every member, e.g. train.epochs=2


@dataclass
class DemoResult:
    members: list[str]
    seconds: float
    registry: Path
    report: Path             # the whole report in one self-contained file

    @property
    def lines(self) -> list[str]:
        # The last line is the page to open.
        return [f"\ndemo finished in {self.seconds:.0f} s; registry: {self.registry}", f"report: {self.report}"]


def demo(req: DemoRequest, settings: Settings) -> DemoResult:
    """Train the three members (replacing earlier demo entries), then vote and report them."""
    started = time.perf_counter()
    ensure_digits(settings.data_root / "digits")
    registry = Registry(settings.registry)
    names = []
    for file in CONFIGS:
        config = load_config(REPO_ROOT / "configs" / "digits" / file, req.overrides)
        if registry.exists(config.name):
            registry.remove(config.name)
            print(f"demo: replacing the previous '{config.name}' entry (its run folder is kept)")
        print(f"\n=== training {config.name} ({config.model.arch}) ===")
        train_member(config, settings)
        names.append(config.name)
    print("\n=== voting ===")
    print_vote(vote(VoteRequest(members=names, name="digits-demo", overwrite=True, compare=True), settings))
    return DemoResult(names, time.perf_counter() - started, registry.path,
                      settings.output_root / "reports" / "digits-demo" / "report.html")
