"""Speed of the bad-image pre-scan next to the naive ways, and what each way catches.

Writes N photo-like 384x512 JPEGs (the mask competition's size) plus one bad file of
each kind (truncated JPEG, truncated PNG, corrupt bytes, 0-byte) into a temp folder, then:

- naive decode: one thread, `Image.open(p).convert("RGB")` per file (full decode);
- PIL verify: one thread, `Image.open(p).verify()` (reads headers/chunks only);
- prescan.scan: the project's scan (JPEG draft decode at 1/8 scale, thread pool);
- prescan cached: the same verdict again, from the fingerprint-keyed cache (what every
  member after the first pays).

    .venv/bin/python benchmarks/prescan_speed.py [--images 400]

Figures are the best of 3 runs. PIL verify is fast but misses truncated JPEGs, which is
why the scan decodes; the draft decode skips most of the IDCT and colour work.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: it reads the variable then

from imagedata.prescan import bad_images, scan  # noqa: E402


def photo(rng: np.random.Generator) -> Image.Image:
    # Smooth shading plus mild noise compresses like a photo (~30-60 KB), unlike pure noise.
    y, x = np.mgrid[0:512, 0:384]
    base = np.stack([x / 384 * 255, y / 512 * 255, (x + y) / 896 * 255], axis=-1)
    pixels = np.clip(base * rng.uniform(0.5, 1.0, 3) + rng.normal(0, 12, base.shape), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def write_files(folder: Path, n: int) -> tuple[list[str], set[str]]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"{i:05d}.jpg"
        photo(rng).save(path, quality=90)
        paths.append(str(path))
    good_jpg = Path(paths[0]).read_bytes()
    photo(rng).save(folder / "full.png")
    bad = {folder / "trunc.jpg": good_jpg[: len(good_jpg) // 2],
           folder / "trunc.png": (folder / "full.png").read_bytes()[:5000],
           folder / "corrupt.jpg": b"\xff\xd8\xff\xe0" + os.urandom(2000),
           folder / "empty.jpg": b""}
    for path, data in bad.items():
        path.write_bytes(data)
    return paths + [str(p) for p in bad], {str(p) for p in bad}


def naive_decode(paths: list[str]) -> set[str]:
    found = set()
    for p in paths:
        try:
            with Image.open(p) as img:
                img.convert("RGB")
        except Exception:  # noqa: BLE001 - the naive way catches everything
            found.add(p)
    return found


def pil_verify(paths: list[str]) -> set[str]:
    found = set()
    for p in paths:
        try:
            with Image.open(p) as img:
                img.verify()
        except Exception:  # noqa: BLE001
            found.add(p)
    return found


def timed(fn, *args, repeats: int = 3):
    """Best of `repeats` wall-clock runs: the machine is shared, so the minimum is the honest figure."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths, planted = write_files(folder, args.images)
        rows = [
            ("naive decode (1 thread, full)", *timed(naive_decode, paths)),
            ("PIL verify (1 thread)", *timed(pil_verify, paths)),
            ("prescan.scan (draft, threads)", *timed(lambda p: set(scan(p).bad), paths)),
        ]
        bad_images(paths, folder / "cache")  # fill the cache; every later member reads it
        rows.append(("prescan cached (next member)", *timed(lambda p: set(bad_images(p, folder / "cache")), paths)))
        print(f"{len(paths)} files ({args.images} JPEGs 384x512 + {len(planted)} bad), {os.cpu_count()} CPU cores")
        print(f"{'method':<32} {'seconds':>8} {'files/s':>9}  bad files found")
        for name, seconds, found in rows:
            print(f"{name:<32} {seconds:8.3f} {len(paths) / seconds:9.0f}  "
                  f"{len(found & planted)} of {len(planted)}")


if __name__ == "__main__":
    main()
