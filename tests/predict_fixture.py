"""Registered digits members for prediction tests, made in a second instead of trained.

Each member is a real timm model with seeded random weights, saved as safetensors with its
config, split file and registry entry, as training leaves them. Inference does not care
whether weights were learned, and the tests need members that differ from each other and
give rows that differ from each other, not members that score well. The head is scaled up
so probabilities are far from uniform, which makes row-order mistakes visible.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch
import yaml

from core.config import load_config, to_dict
from core.hashing import sha256_file
from core.registry import Registry
from core.settings import REPO_ROOT, Settings
from imagedata.sources import load_dataset
from imagedata.splits import ensure_split
from modeling.checkpoint import save_weights
from modeling.models import build_model, find_head

CONFIG = REPO_ROOT / "configs" / "digits" / "resnet18.yaml"
# name, architecture, input size: two sizes and two normalisations (test_resnet uses mean 0.5),
# so one member's input is derived by resizing and each group normalises its own way.
MEMBERS = [("m-resnet", "resnet10t", 16), ("m-tiny", "test_resnet", 24)]
HEAD_GAIN = 20.0


def register_member(settings: Settings, name: str, arch: str, size: int, seed: int) -> dict:
    config = load_config(CONFIG, [f"name={name}", f"model.arch={arch}", f"data.image_size=[{size},{size}]"])
    dataset = load_dataset(config.data, settings.data_root)
    s = config.data.split
    split = ensure_split(dataset.train, s.name, s.n_folds, s.seed, settings.splits, config.data.duplicates,
                         config.data.near_duplicate_distance, settings.image_cache)
    torch.manual_seed(seed)
    built = build_model(arch, dataset.num_classes)
    with torch.no_grad():
        find_head(built.model)[2].weight.mul_(HEAD_GAIN)
    run_dir = settings.runs / "2026-11-27" / f"000000_{name}_{arch}_f1-0.0000"
    run_dir.mkdir(parents=True)
    sha = save_weights(built.model, run_dir / "best.safetensors")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8")
    registry = Registry(settings.registry)
    entry = {
        "name": name, "arch": arch, "classes": list(dataset.classes),
        "weights": registry.relative(run_dir / "best.safetensors"), "sha256": sha,
        "input": {"size": [size, size], "mean": list(built.mean), "std": list(built.std), "interpolation": "bilinear"},
        "split": {"name": s.name, "sha256": sha256_file(split.path), "fold": s.fold, "n_folds": s.n_folds},
        "metrics": {"val_f1_macro": 0.0, "val_acc": 0.0, "val_loss": 0.0, "best_epoch": 1},
        "config": registry.relative(run_dir / "config.yaml"), "created": "2026-11-27T00:00:00Z",
    }
    registry.add(entry)
    return entry


def members_template(base: Path, digits_root: Path) -> Path:
    """An output root holding the registered MEMBERS, built once per test session under `base`."""
    root = base / "predict-members-template"
    if not (root / "registry.yaml").exists():
        staging = base / "predict-members-staging"
        shutil.rmtree(staging, ignore_errors=True)
        settings = Settings(data_root=digits_root.parent, output_root=staging)
        for seed, (name, arch, size) in enumerate(MEMBERS):
            register_member(settings, name, arch, size, seed)
        staging.rename(root)
    return root


def project_copy(template: Path, dest: Path, digits_root: Path) -> tuple[Settings, dict]:
    """A private copy of the template (registry paths are relative, so it moves) and the env for scripts."""
    shutil.copytree(template, dest)
    settings = Settings(data_root=digits_root.parent, output_root=dest)
    env = {"VOTE_OUTPUT_ROOT": str(dest), "VOTE_DATA_ROOT": str(digits_root.parent), "TQDM_DISABLE": "1",
           "WANDB_MODE": "disabled", "VOTE_LOCAL_CONFIG": str(dest / "no-local.yaml")}
    return settings, env
