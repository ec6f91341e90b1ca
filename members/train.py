"""Train one member end to end and register it; the function behind scripts/train.py."""
from __future__ import annotations

import logging
import random
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from core import atomic
from core.errors import UserError
from core.hashing import sha256_file
from core.images import RESIZE_INTERPOLATION
from core.registry import Registry
from core.settings import REPO_ROOT, Settings
from members import artifacts
from members.augment import ArrayDataset, train_transform
from members.config import MemberConfig, to_dict
from members.data.image_cache import cache_bytes, decoded_images
from members.data.sources import Dataset, load_dataset
from members.data.splits import Split, ensure_split
from members.models import build_model, check_arch, count_parameters
from members.run_folder import create_run_folder, finish_run_folder
from members.tracking import Tracker
from members.trainer import Normalize, Trainer, resolve_device

log = logging.getLogger("members")
SMOKE_BATCHES = 2


@dataclass
class MemberData:
    dataset: Dataset
    split: Split
    images: np.ndarray      # decoded pool, every train and val row
    train_idx: np.ndarray
    val_idx: np.ndarray
    val_ids: list[str]
    labels: np.ndarray


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def prepare_data(config: MemberConfig, settings: Settings) -> MemberData:
    dataset = load_dataset(config.data, settings.data_root)
    s = config.data.split
    split = ensure_split(dataset.train, s.name, s.n_folds, s.seed, settings.splits)
    pool = dataset.train.reset_index(drop=True)
    position = pd.Series(np.arange(len(pool)), index=pool["id"])
    train_idx = position[split.rows(s.fold, "train")["id"]].to_numpy()
    val_ids = split.rows(s.fold, "val")["id"].tolist()
    val_idx = position[val_ids].to_numpy()
    images = decoded_images(pool["path"].tolist(), tuple(config.data.image_size), settings.image_cache,
                            desc=f"decode {dataset.name}")
    log.info("image cache: %d images at %dx%d, %.1f MiB on disk (memmap)", len(pool), *config.data.image_size,
             cache_bytes(images) / 2**20)
    return MemberData(dataset, split, images, train_idx, val_idx, val_ids, pool["label"].to_numpy())


def _loaders(config: MemberConfig, data: MemberData, device: torch.device):
    size = tuple(config.data.image_size)
    train_set = torch.utils.data.Subset(
        ArrayDataset(data.images, data.labels, train_transform(size, config.train.augment)), data.train_idx)
    val_set = torch.utils.data.Subset(ArrayDataset(data.images, data.labels), data.val_idx)
    common = {"batch_size": config.train.batch_size, "num_workers": config.train.num_workers,
              "pin_memory": device.type == "cuda", "persistent_workers": config.train.num_workers > 0}
    generator = torch.Generator().manual_seed(config.train.seed)
    return (torch.utils.data.DataLoader(train_set, shuffle=True, drop_last=len(train_set) > config.train.batch_size,
                                        generator=generator, **common),
            torch.utils.data.DataLoader(val_set, shuffle=False, **common))


def _attach_log(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def build_entry(config: MemberConfig, registry: Registry, run_dir: Path, data: MemberData, sha256: str,
                built, result, tracker: Tracker) -> dict:
    s = config.data.split
    return {
        "name": config.name,
        "arch": config.model.arch,
        "classes": list(data.dataset.classes),
        "weights": registry.relative(run_dir / "best.safetensors"),
        "sha256": sha256,
        "input": {"size": list(config.data.image_size), "mean": [float(v) for v in built.mean],
                  "std": [float(v) for v in built.std], "interpolation": RESIZE_INTERPOLATION},
        "split": {"name": s.name, "sha256": data.split.sha256, "fold": s.fold, "n_folds": s.n_folds},
        "metrics": {k: round(float(result.best[k]), 6) for k in ("val_f1_macro", "val_acc", "val_loss")}
                   | {"best_epoch": result.best_epoch},
        "config": registry.relative(run_dir / "config.yaml"),
        "run": registry.relative(run_dir),
        "val_probs": registry.relative(run_dir / "val_probs.npz"),
        "data": {"source": config.data.source, "root": config.data.root, "test": config.data.test},
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git": git_revision(),
        "tracking": {"wandb_run": tracker.run_id, "group": config.ensemble},
        "pretrained": built.origin,
    }


def _write_run_artifacts(config: MemberConfig, run_dir: Path, data: MemberData, result) -> None:
    best = result.best_outputs
    val_labels = data.labels[data.val_idx][: len(best.probs)]
    artifacts.save_probs(run_dir / "val_probs.npz", data.val_ids[: len(best.probs)], val_labels, best.probs, best.logits)
    artifacts.plot_curves(result.history, run_dir / "curves.png", f"{config.name} ({config.model.arch})")
    artifacts.plot_confusion(val_labels, best.probs.argmax(1), data.dataset.classes, run_dir / "confusion.png",
                             f"{config.name}: validation, best epoch {result.best_epoch}")
    atomic.write_text(run_dir / "history.csv", pd.DataFrame(result.history).to_csv(index=False))


def _smoke_predict(built, normalize, data: MemberData, config: MemberConfig, settings: Settings) -> int:
    """Exercise the prediction path on a few test images so smoke catches what predict would hit."""
    from predict.inference import predict_paths

    test = data.dataset.test
    if test is None or test.empty:
        return 0
    paths = test["path"].tolist()[: config.train.batch_size]
    probs = predict_paths(built.model, normalize, paths, tuple(config.data.image_size), torch.device("cpu"),
                          settings.image_cache / "smoke")
    return len(probs)


def train_member(config: MemberConfig, settings: Settings, smoke: bool = False,
                 registry_path: Path | None = None) -> tuple[Path, dict | None]:
    """Train, write the run folder and register; smoke runs a few batches and registers nothing."""
    check_arch(config.model.arch)
    registry = Registry(registry_path or settings.registry)
    if not smoke and registry.exists(config.name):
        raise UserError(f"member '{config.name}' is already in {registry.path}; pick another name=")
    seed_everything(config.train.seed, config.train.deterministic)
    data = prepare_data(config, settings)
    built = build_model(config.model.arch, data.dataset.num_classes, config.model.pretrained_file,
                        config.model.drop_rate)
    device = resolve_device(config.train.device)
    runs_root = settings.runs / "_smoke" if smoke else settings.runs
    run_dir = create_run_folder(runs_root, config.name, config.model.arch)
    handler = _attach_log(run_dir)
    tracker = None
    try:
        log.info("member %s: %s, %s, %.2fM parameters, device %s", config.name, config.model.arch, built.origin,
                 count_parameters(built.model) / 1e6, device)
        log.info("split %s fold %d: %d train / %d val rows", config.data.split.name, config.data.split.fold,
                 len(data.train_idx), len(data.val_idx))
        if smoke:
            config.train.epochs = 1
        config_dict = to_dict(config)
        atomic.write_text(run_dir / "config.yaml", yaml.safe_dump(config_dict, sort_keys=False))
        tracker = Tracker(config, run_dir, settings.wandb_entity, config_dict, enabled=not smoke)
        normalize = Normalize(built.mean, built.std)
        trainer = Trainer(config, built.model, normalize, run_dir, device,
                          max_batches=SMOKE_BATCHES if smoke else None, on_epoch=tracker.log_epoch)
        train_loader, val_loader = _loaders(config, data, device)
        result = trainer.fit(train_loader, val_loader, data.labels[data.val_idx])
        _write_run_artifacts(config, run_dir, data, result)
        if smoke:
            n = _smoke_predict(built, normalize.cpu(), data, config, settings)
            log.info("smoke: predicted %d test images; nothing registered", n)
            return run_dir, None
        run_dir = finish_run_folder(run_dir, config.early_stopping.monitor, result.best[config.early_stopping.monitor])
        sha = sha256_file(run_dir / "best.safetensors")
        entry = build_entry(config, registry, run_dir, data, sha, built, result, tracker)
        registry.add(entry)
        tracker.finish({f"best/{k}": v for k, v in result.best.items()})
        log.info("registered %s in %s", config.name, registry.path)
        return run_dir, entry
    except BaseException:
        if tracker is not None:
            tracker.finish(exit_code=1)
        raise
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def console_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
