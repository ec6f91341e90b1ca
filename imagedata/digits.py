"""scikit-learn's bundled digits written out as real PNG files in the layouts users bring.

Training pool: an image folder (one sub-folder per class). Held-out test set:
the competition shape, `info.csv` (ImageID,ans) plus `images/`, with the true
labels kept aside in `labels.csv` so the demo can score its submission honestly.
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

LAYOUT_VERSION = "digits-v1"
SIZE = 32


def _to_png(image8x8: np.ndarray, path: Path) -> None:
    grey = Image.fromarray((image8x8 / 16.0 * 255.0).round().astype(np.uint8), mode="L")
    grey.resize((SIZE, SIZE), Image.Resampling.BILINEAR).convert("RGB").save(path, format="PNG")


def _image_id(index: int) -> str:
    return hashlib.sha1(f"digits-{index}".encode()).hexdigest()[:16] + ".png"


def _write(root: Path) -> None:
    digits = load_digits()
    index = np.arange(len(digits.target))
    train_idx, test_idx = train_test_split(index, test_size=0.2, stratify=digits.target, random_state=0)
    for i in train_idx:
        folder = root / "train" / str(digits.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        _to_png(digits.images[i], folder / f"{i:04d}.png")
    images = root / "test" / "images"
    images.mkdir(parents=True)
    ids = [_image_id(i) for i in sorted(test_idx)]
    for i, image_id in zip(sorted(test_idx), ids):
        _to_png(digits.images[i], images / image_id)
    pd.DataFrame({"ImageID": ids, "ans": 0}).to_csv(root / "test" / "info.csv", index=False)
    labels = [int(digits.target[i]) for i in sorted(test_idx)]
    pd.DataFrame({"ImageID": ids, "label": labels}).to_csv(root / "test" / "labels.csv", index=False)
    (root / "VERSION").write_text(LAYOUT_VERSION + "\n", encoding="utf-8")


def ensure_digits(root: str | Path) -> Path:
    """Write the dataset once; later calls reuse it. Built in a temp folder and renamed in whole."""
    root = Path(root)
    marker = root / "VERSION"
    if marker.exists() and marker.read_text(encoding="utf-8").strip() == LAYOUT_VERSION:
        return root
    if root.exists() and any(root.iterdir()):
        shutil.rmtree(root)  # an older or interrupted layout: rebuild it whole
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".digits-", dir=root.parent))
    try:
        _write(staging)
        if root.exists():
            root.rmdir()
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root
