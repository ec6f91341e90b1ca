"""Exact and near-duplicate images, found so that a split can keep every copy of a picture in one fold.

Two kinds of copy are looked for:
- exact: the same file bytes (sha256);
- near: the same picture re-encoded, resized or slightly cropped, found by a 64-bit perceptual
  hash (imagehash's phash: a DCT of a 32x32 grey thumbnail) within a Hamming distance; the
  thumbnails are made on the pre-scan's thread pool and hashed in one batch (`phashes`).

Neighbours are found by multi-index hashing rather than by comparing all pairs: the 64 bits are
cut into `distance + 1` chunks, and by the pigeonhole principle two hashes within `distance` bits
agree exactly on at least one chunk, so only images sharing a chunk value are compared. Copies
are joined with each other and with their existing group (a person, a sub-folder, a CSV `group`)
by union-find, so a group absorbs every duplicate of every one of its images.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.fftpack
from PIL import Image, UnidentifiedImageError

from core.images import to_rgb
from core.limits import MAX_NEAR_DUPLICATE_DISTANCE

HASH_BITS = 64
# Why 8 (core.config's default too): in benchmarks/duplicates.py re-encoded and resized photos land
# within 0-6 bits and 5% crops mostly within 8, while mirrored copies lie 26-40 bits apart and
# unrelated pictures 14 or more. On the 8x8-upscaled digits demo 8 joins look-alike digits of
# different classes, which is why the digits configs ask for 4.
DEFAULT_DISTANCE = 8
_THUMB = 32  # phash's own working size (hash_size 8 x highfreq_factor 4)
# A flat picture (blank frame, solid colour) has no structure to hash: every one of them gets the same
# phash whatever its colour, so it is matched by its bytes only. Grey levels, 0..255, of the thumbnail.
FLAT_STD = 2.0
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
              7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def describe_setting(setting: str, distance: int) -> str:
    """What a split file and a registry entry record: 'off', 'exact' or 'near<=10'."""
    return f"near<={distance}" if setting == "near" else setting


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(0x0112, 1)
        return int(value) if value in _TRANSPOSE else 1
    except Exception:  # noqa: BLE001 - a damaged EXIF block only costs the rotation
        return 1


@dataclass
class FileHash:
    sha256: str
    thumb: np.ndarray | None       # the 32x32 grey picture phash is taken of; None for a flat or bad file
    size: tuple[int, int] | None   # upright (width, height); None when it does not decode
    phash: str | None = None       # filled by `with_phashes`, many files at once


def _thumbnail(data: bytes) -> tuple[np.ndarray, tuple[int, int]]:
    """phash's 32x32 grey input, upright, and the upright size; JPEGs decoded at 1/8 scale, like the pre-scan.

    The decoder still reads every byte, so this decode is also the pre-scan's check of the file.
    """
    with Image.open(io.BytesIO(data)) as img:
        width, height = img.size
        orientation = _orientation(img)
        if img.format == "JPEG":
            img.draft("L", (_THUMB, _THUMB))  # at least 32 px a side: 1/8 scale for any photo
        img.load()
        small = img if img.mode in ("L", "RGB") else to_rgb(img)
        small = small.convert("L")
    factor = min(small.size) // (_THUMB * 2)
    if factor > 1:  # a box reduction first keeps the LANCZOS resize below cheap on big PNGs
        small = small.reduce(factor)
    if orientation != 1:
        small = small.transpose(_TRANSPOSE[orientation])
    size = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    # imagehash.phash's own first step (convert L, LANCZOS to 32x32), done here where Pillow releases the GIL.
    return np.asarray(small.resize((_THUMB, _THUMB), Image.Resampling.LANCZOS)), size


def hash_bytes(data: bytes) -> FileHash:
    """sha256, the phash thumbnail and the size of one file; the phash itself comes from `with_phashes`."""
    digest = hashlib.sha256(data).hexdigest()
    try:
        thumb, size = _thumbnail(data)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError):
        return FileHash(digest, None, None)
    if float(thumb.std()) < FLAT_STD:
        return FileHash(digest, None, size)
    return FileHash(digest, thumb, size)


def phashes(thumbs: np.ndarray) -> list[str]:
    """imagehash.phash of many 32x32 grey thumbnails at once, as its 16-hex-digit strings.

    The same steps as `imagehash.phash` (a 2-D DCT-II, the 8x8 lowest frequencies, each bit = above
    their median), on a stack, so thousands of files cost one numpy call rather than thousands of
    GIL-bound Python calls; tests check it bit for bit against imagehash.phash.
    """
    if len(thumbs) == 0:
        return []
    dct = scipy.fftpack.dct(scipy.fftpack.dct(np.asarray(thumbs), axis=1), axis=2)
    low = dct[:, :8, :8].reshape(len(thumbs), 64)
    bits = low > np.median(low, axis=1, keepdims=True)
    packed = np.packbits(bits, axis=1)  # first bit most significant, as imagehash writes its hex
    return [row.tobytes().hex() for row in packed]


def with_phashes(found: list[FileHash]) -> list[FileHash]:
    """Fill `phash` for every entry that has a thumbnail, in one batched call, and drop the thumbnails."""
    rows = [i for i, f in enumerate(found) if f.thumb is not None]
    for i, code in zip(rows, phashes(np.stack([found[i].thumb for i in rows]) if rows else np.zeros((0, 32, 32)))):
        found[i].phash = code
    for f in found:
        f.thumb = None
    return found


def hash_file(path: str | Path) -> tuple[str, str | None]:
    """(sha256 of the bytes, 16-hex-digit phash); the phash is None for a flat picture or a file that does not decode."""
    [found] = with_phashes([hash_bytes(Path(path).read_bytes())])
    return found.sha256, found.phash


class UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return int(root)

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[max(ra, rb)] = min(ra, rb)
        return True

    def labels(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(len(self.parent))])


def to_codes(phashes: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 codes, mask of rows that have one) from the hex strings."""
    valid = np.array([h is not None for h in phashes], dtype=bool)
    codes = np.array([int(h, 16) if h is not None else 0 for h in phashes], dtype=np.uint64)
    return codes, valid


def _chunks(max_distance: int) -> list[tuple[int, int]]:
    """(shift, width) of `max_distance + 1` nearly equal bit chunks covering the 64 bits."""
    n = max_distance + 1
    widths = [HASH_BITS // n + (1 if i < HASH_BITS % n else 0) for i in range(n)]
    shifts = np.cumsum([0] + widths[:-1])
    return [(int(s), w) for s, w in zip(shifts, widths)]


def _chunk_matches(codes: np.ndarray, keys: np.ndarray, max_distance: int) -> np.ndarray:
    """Pairs [a, b, distance] of positions with equal keys and codes within `max_distance`, vectorised.

    After sorting by key, the members of a bucket are consecutive; step k compares each position
    with the one k places on, for as long as that one is still in the same bucket. The positions
    still alive shrink with k, so the work is the number of pairs inside buckets (no Python loop
    over buckets), and each step keeps only its matches, so memory stays at one array of n.
    """
    order = np.argsort(keys, kind="stable")
    sorted_keys, sorted_codes = keys[order], codes[order]
    alive = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])  # p such that p and p+1 share a bucket
    found = []
    k = 1
    while len(alive):
        dist = np.bitwise_count(sorted_codes[alive] ^ sorted_codes[alive + k])
        hit = dist <= max_distance
        if hit.any():
            found.append(np.stack([order[alive[hit]], order[alive[hit] + k], dist[hit].astype(np.int64)], axis=1))
        k += 1
        alive = alive[alive + k < len(order)]
        alive = alive[sorted_keys[alive + k] == sorted_keys[alive]]
    return np.concatenate(found) if found else np.zeros((0, 3), dtype=np.int64)


def near_pairs(codes: np.ndarray, max_distance: int, valid: np.ndarray | None = None) -> np.ndarray:
    """Every pair (i < j) within `max_distance` bits, as rows [i, j, distance], by multi-index hashing."""
    if not 0 <= max_distance <= MAX_NEAR_DUPLICATE_DISTANCE:
        raise ValueError(f"max_distance must lie in 0..{MAX_NEAR_DUPLICATE_DISTANCE}")
    index = np.flatnonzero(valid) if valid is not None else np.arange(len(codes))
    codes = np.asarray(codes, dtype=np.uint64)[index]
    found: list[np.ndarray] = []
    for shift, width in _chunks(max_distance):
        keys = (codes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        matches = _chunk_matches(codes, keys, max_distance)
        if len(matches):
            a, b = index[matches[:, 0]], index[matches[:, 1]]
            found.append(np.stack([np.minimum(a, b), np.maximum(a, b), matches[:, 2]], axis=1))
    if not found:
        return np.zeros((0, 3), dtype=np.int64)
    return np.unique(np.concatenate(found).astype(np.int64), axis=0)  # a pair sharing two chunks is found twice


def all_pairs(codes: np.ndarray, max_distance: int) -> np.ndarray:
    """The naive way (every pair compared), for the benchmark and the tests to check `near_pairs` against."""
    codes = np.asarray(codes, dtype=np.uint64)
    dist = np.bitwise_count(codes[:, None] ^ codes[None, :])
    i, j = np.nonzero(np.triu(dist <= max_distance, k=1))
    return np.stack([i, j, dist[i, j]], axis=1).astype(np.int64)


def exact_sets(sha256: list[str | None]) -> list[list[int]]:
    """Indices of files with the same bytes, one list per set of two or more."""
    owners: dict[str, list[int]] = {}
    for i, digest in enumerate(sha256):
        if digest:
            owners.setdefault(digest, []).append(i)
    return [rows for rows in owners.values() if len(rows) > 1]


def duplicate_links(sha256: list[str | None], phashes: list[str | None], setting: str,
                    distance: int) -> np.ndarray:
    """Pairs [i, j] of rows that are copies of each other under the setting (none for 'off')."""
    if setting == "off":
        return np.zeros((0, 2), dtype=np.int64)
    links = [np.array([[rows[0], r] for r in rows[1:]], dtype=np.int64) for rows in exact_sets(sha256)]
    if setting == "near":
        codes, valid = to_codes(phashes)
        links.append(near_pairs(codes, distance, valid)[:, :2])
    links = [x for x in links if len(x)]
    return np.concatenate(links) if links else np.zeros((0, 2), dtype=np.int64)


def duplicate_sets(n: int, links: np.ndarray) -> list[list[int]]:
    """Connected sets of two or more rows, joined through the links alone (no groups)."""
    uf = UnionFind(n)
    for a, b in links:
        uf.union(int(a), int(b))
    labels = uf.labels()
    sets: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        sets.setdefault(int(label), []).append(i)
    return [rows for rows in sets.values() if len(rows) > 1]


@dataclass
class Absorbed:
    groups: pd.Series    # the new group of every row, aligned with the input
    merged: int          # how many groups disappeared into another (groups before - groups after)
    sets: int            # duplicate sets found (two or more rows joined through copies)


def absorb(groups: pd.Series, links: np.ndarray) -> Absorbed:
    """Join each duplicate pair's groups by union-find; a joined group keeps its smallest member name.

    The name is deterministic, so the same data and setting give the same split file every time.
    """
    names = groups.astype(str).to_numpy()
    uniq, inverse = np.unique(names, return_inverse=True)
    uf = UnionFind(len(uniq))
    for a, b in links:
        uf.union(int(inverse[a]), int(inverse[b]))
    # Roots are the smallest index of their component, and `uniq` is sorted: the root is the smallest name.
    roots = uf.labels()
    joined = uniq[roots[inverse]]
    n_sets = len(duplicate_sets(len(names), links)) if len(links) else 0
    return Absorbed(pd.Series(joined, index=groups.index, name=groups.name), len(uniq) - len(np.unique(roots)),
                    n_sets)
