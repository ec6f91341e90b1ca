"""check_data: a test image close to two training images must not chain them into a leak no split can fix."""
from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from imagedata.duplicates import DEFAULT_DISTANCE, hash_file
from scripts.check_data import main as check_data


def _blend(path, alpha, seed=0):
    """Blends of two random 8x8 pictures: alpha 0 and 0.35 are farther apart than the near-duplicate
    distance, and alpha 0.1 lies within it of both (measured below, so the test says if that ever changes)."""
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 255, (8, 8, 3)), rng.integers(0, 255, (8, 8, 3))
    Image.fromarray(np.kron((1 - alpha) * x + alpha * y, np.ones((4, 4, 1))).astype(np.uint8)).save(path)
    return path


def _bits(a, b):
    return bin(int(hash_file(a)[1], 16) ^ int(hash_file(b)[1], 16)).count("1")


def test_a_test_image_does_not_chain_two_training_images_into_a_leak(tmp_path, capsys):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "test").mkdir()
    a, b = _blend(tmp_path / "imgs" / "a.png", 0.0), _blend(tmp_path / "imgs" / "b.png", 0.35)
    t = _blend(tmp_path / "test" / "t.png", 0.1)
    assert _bits(a, b) > DEFAULT_DISTANCE >= max(_bits(a, t), _bits(t, b))
    fillers = [_blend(tmp_path / "imgs" / f"f{i}.png", 0.0, seed=100 + i).name for i in range(6)]
    names = ["a.png", "b.png", *fillers]
    (tmp_path / "train.csv").write_text("path,label\n" + "".join(f"imgs/{n},{i % 2}\n" for i, n in enumerate(names)))
    split = tmp_path / "split.csv"   # a and b in different folds: fine, as they are not copies of each other
    pd.DataFrame({"id": [f"imgs/{n}" for n in names], "group": [f"imgs/{n}" for n in names],
                  "label": [i % 2 for i in range(8)], "fold": [0, 1, 0, 1, 0, 1, 1, 0]}).to_csv(split, index=False)
    rc = check_data(["--source", "csv", "--root", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test"),
                     "--split", str(split), "--n-folds", "2"])
    out = capsys.readouterr().out
    assert "train-test overlap: 2 set(s)" in out or "train-test overlap: 1 set(s)" in out   # still shown
    assert "leaks through duplicates" not in out and rc == 0, out
