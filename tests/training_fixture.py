"""A tiny real image-folder data set and member config, for tests that train for real in seconds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image

CLASSES = ("circle", "bar", "cross")
PER_CLASS = 16


def _draw(kind: str, rng: np.random.Generator, size: int = 20) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.integers(7, 13, 2)
    if kind == "circle":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < 20
    elif kind == "bar":
        mask = np.abs(xx - cx) < 2
    else:
        mask = (np.abs(xx - cx) < 2) | (np.abs(yy - cy) < 2)
    image = rng.integers(0, 60, (size, size, 3))
    image[mask] = rng.integers(180, 256, 3)
    return image.astype(np.uint8)


def write_shapes(root: Path, seed: int = 0) -> Path:
    """root/<class>/<n>.png: three classes of noisy shapes, PER_CLASS PNG files each."""
    rng = np.random.default_rng(seed)
    for kind in CLASSES:
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(PER_CLASS):
            Image.fromarray(_draw(kind, rng)).save(folder / f"{i:02d}.png")
    return root


def member_config(path: Path, data_root: Path, name: str = "tiny", **train) -> Path:
    """A member YAML on the shapes data: test_resnet (a real timm model, 0.4M parameters) at 16 px."""
    config = {
        "name": name,
        "ensemble": "tests",
        "data": {"source": "folder", "root": str(data_root), "image_size": [16, 16],
                 "split": {"name": "shapes-s0", "n_folds": 4, "fold": 0, "seed": 0}},
        "model": {"arch": "test_resnet"},
        "train": {"epochs": 3, "batch_size": 8, "lr": 0.003, "seed": 0, "deterministic": True,
                  "augment": {"hflip": 0.5, "crop_scale": [0.6, 1.0], "color_jitter": 0.2}, **train},
        "early_stopping": {"monitor": "val_f1_macro", "mode": "max", "patience": 10},
        "tracking": {"wandb": {"mode": "disabled"}},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def one_thread(monkeypatch):
    """One compute thread here and in child processes: on a busy 2-core box, OpenMP threads that wait
    for each other make a tiny model 20x slower, and one thread keeps CPU results bit-identical
    between this process and a subprocess."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return before
