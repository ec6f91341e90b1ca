"""A run whose registration fails must not be left looking finished."""
from __future__ import annotations

import pytest

from core.config import load_config
from core.errors import UserError
from core.registry import Registry
from core.settings import load_settings
from helpers import REPO
from jobs.train import train_member


def test_failed_registration_leaves_the_run_incomplete(monkeypatch, digits_root):
    monkeypatch.setenv("VOTE_DATA_ROOT", str(digits_root.parent))
    config = load_config(REPO / "configs" / "digits" / "resnet18.yaml",
                         ["name=x", "model.arch=resnet10t", "train.epochs=1", "data.image_size=[16,16]",
                          "train.batch_size=256"])

    def refuse(self, entry):
        raise UserError("registry refused (simulated race)")

    monkeypatch.setattr(Registry, "add", refuse)
    settings = load_settings()
    with pytest.raises(UserError, match="simulated race"):
        train_member(config, settings)
    runs = [p for p in settings.runs.glob("*/*") if p.is_dir()]
    assert len(runs) == 1
    assert runs[0].name.endswith("_incomplete")
    assert (runs[0] / "best.safetensors").is_file()  # the work is kept for inspection, just not marked done
    assert not settings.registry.exists()
