"""How well, and how fast, near-duplicate grouping finds planted copies.

Writes N photo-like 512x384 JPEGs (tests/duplicates_fixture.scene: gradients and shapes, blurred
and noised), then plants copies of some of them under other names: byte-identical, JPEG
re-encoded at quality 60, resized to half, cropped by 3% on every side, and mirrored (a control
that must not be joined). Then:

- recall per kind (a copy counts when it lands in its original's group) and precision (of all
  the image pairs the grouping puts together, the share that are planted copies), and false
  merges of the mirrored controls, at several `data.near_duplicate_distance` values;
- hashing time per 1,000 images: the pre-scan's decode alone (prescan.scan), the pre-scan taking the
  hashes in the same visit (what a first member pays, `scan(with_phash=True)`), hashing on its own
  (prescan.file_hashes, as check_data does), cold and cached, and the naive way (one thread,
  `imagehash.phash(Image.open(p))`, a full decode);
- the neighbour search: multi-index hashing (duplicates.near_pairs) against all pairs, on the
  planted set and on 50,000 random hashes.

    .venv/bin/python benchmarks/duplicates.py [--images 800] [--copies 100]

Timings are the best of 3 runs, with the files already in the OS page cache for every way.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: it reads the variable then

from imagedata.duplicates import absorb, all_pairs, duplicate_links, near_pairs, to_codes  # noqa: E402
from imagedata.prescan import file_hashes, scan  # noqa: E402
from tests.duplicates_fixture import KINDS, copy_of, scene  # noqa: E402

DISTANCES = (4, 6, 8, 10, 12)


def best_of(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def write_data(folder: Path, n: int, n_copies: int) -> tuple[list[str], list[tuple[int, int, str]]]:
    """Paths, and (original index, copy index, kind) for every planted copy."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"{i:05d}.jpg"
        scene(rng, 512, 384).save(path, quality=90)
        paths.append(str(path))
    planted = []
    chosen = rng.permutation(n)
    for k, kind in enumerate(KINDS):
        for original in chosen[k * n_copies:(k + 1) * n_copies]:
            dest = folder / f"copy_{kind}_{original:05d}.{'png' if kind == 'resized' else 'jpg'}"
            copy_of(Path(paths[original]), kind, dest)
            planted.append((int(original), len(paths), kind))
            paths.append(str(dest))
    return paths, planted


def quality(paths: list[str], planted, sha, phash, distance: int) -> dict:
    groups = pd.Series([str(i) for i in range(len(paths))])
    joined = absorb(groups, duplicate_links(sha, phash, "near", distance)).groups.to_numpy()
    row = {"distance": distance}
    for kind in KINDS:
        hits = [joined[a] == joined[b] for a, b, k in planted if k == kind]
        row["flipped false merges" if kind == "flipped" else f"recall {kind}"] = (
            f"{sum(hits)}/{len(hits)}" if kind == "flipped" else f"{np.mean(hits):.1%}")
    true_pairs = {(a, b) for a, b, k in planted if k != "flipped"}
    together = 0
    correct = 0
    for label in np.unique(joined):
        members = np.flatnonzero(joined == label)
        if len(members) > 1:
            together += len(members) * (len(members) - 1) // 2
            correct += sum((int(a), int(b)) in true_pairs for a in members for b in members if a < b)
    row["precision"] = f"{correct / together:.1%}" if together else "n/a"
    row["pairs joined"] = together
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=800, help="original pictures")
    parser.add_argument("--copies", type=int, default=100, help="planted copies of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        paths, planted = write_data(folder, args.images, args.copies)
        n = len(paths)
        print(f"{n} images ({args.images} originals + {args.copies} copies of each of: {', '.join(KINDS)}), "
              f"512x384 JPEG (resized copies 256x192 PNG)\n")

        sha, phash = file_hashes(paths, None)
        table = pd.DataFrame([quality(paths, planted, sha, phash, d) for d in DISTANCES])
        print("Grouping quality (each image its own group before; default distance 8):")
        print(table.to_string(index=False))

        per_k = 1000 / n
        cache = Path(tmp) / "cache"
        cold = best_of(lambda: file_hashes(paths, None))
        file_hashes(paths, cache)
        cached = best_of(lambda: file_hashes(paths, cache))
        prescan = best_of(lambda: scan(paths))
        together = best_of(lambda: scan(paths, with_phash=True))
        naive = best_of(lambda: [imagehash.phash(Image.open(p)) for p in paths], runs=1)
        print("\nTime per 1,000 images (best of 3; files in the page cache):")
        print(f"  pre-scan decode alone (prescan.scan)          {prescan * per_k:7.2f} s")
        print(f"  pre-scan + hashes in one visit (first member) {together * per_k:7.2f} s   "
              f"(hashing adds {(together - prescan) * per_k:.2f} s = {(together - prescan) / prescan:.0%} "
              f"of the decode)")
        print(f"  project hashing, cold (prescan.file_hashes)   {cold * per_k:7.2f} s   "
              f"({cold / prescan:.2f}x the pre-scan)")
        print(f"  project hashing, cached (fingerprint hit)     {cached * per_k:7.3f} s")
        print(f"  naive: imagehash.phash(Image.open(p)), 1 run  {naive * per_k:7.2f} s   "
              f"({naive / cold:.1f}x the project's cold hashing)")

        codes, valid = to_codes(phash)
        mih = best_of(lambda: near_pairs(codes, 8, valid))
        brute = best_of(lambda: all_pairs(codes[valid], 8))
        rng = np.random.default_rng(1)
        big = rng.integers(0, 2**63, 50_000, dtype=np.uint64) * np.uint64(2)
        big_mih = best_of(lambda: near_pairs(big, 8), runs=1)
        # All pairs of 50,000 is 1.25e9 comparisons: timed on 5,000 rows and scaled by (50,000 / 5,000)^2.
        big_brute = best_of(lambda: all_pairs(big[:5000], 8), runs=1) * 100
        print("\nNeighbour search within 8 bits:")
        print(f"  {n:>6} planted hashes: multi-index {mih * 1000:8.1f} ms, all pairs {brute * 1000:8.1f} ms")
        print(f"  50,000 random hashes: multi-index {big_mih:8.2f} s,  all pairs ~{big_brute:7.1f} s (scaled from 5,000)")


if __name__ == "__main__":
    main()
