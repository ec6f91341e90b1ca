"""Find every undecodable image before training or prediction starts, not one per crash.

The scan fully decodes each file (JPEGs at 1/8 scale, see `core.images.probe`)
on a thread pool and collects every failure. Its verdict is cached by the data
fingerprint (paths, sizes, mtimes), so the members trained one after another
on the same data scan it once.
"""
from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from core import atomic
from core.errors import UserError
from core.hashing import sha256_file, sha256_text
from core.images import BadImageError, probe
from imagedata.duplicates import FileHash, hash_bytes, with_phashes
from imagedata.image_cache import data_fingerprint

log = logging.getLogger("members")
SCAN_VERSION = "scan-v1"
HASH_VERSION = "hash-v1"  # bump when the perceptual hash or its thumbnail changes
LISTED = 5  # bad files named in a one-line message; the rest are counted


@dataclass
class ScanResult:
    paths: list[str]
    sizes: list[tuple[int, int] | None]   # upright (width, height); None for a bad file
    bad: dict[str, str]                   # path -> reason, in the order of `paths`
    sha256: list[str | None]              # of the file's bytes, when asked for
    phash: list[str | None] = field(default_factory=list)  # perceptual hashes, when asked for


def _probe(path: str) -> tuple[tuple[int, int] | None, str | None]:
    try:
        return probe(path), None
    except BadImageError as err:
        return None, err.reason


def _inspect(path: str, with_hash: bool, with_phash: bool) -> tuple:
    """(size, reason, sha256, phash) from one visit, so each file is read from disk once."""
    if with_phash and os.path.isfile(path):
        # The hashing decode reads every byte too, so it stands in for the probe; only a file it cannot
        # decode is probed again, for the same reason text the scan gives without hashing.
        found = hash_bytes(Path(path).read_bytes())
        size, reason = (found.size, None) if found.size is not None else _probe(path)
        return size, reason, found.sha256, found
    digest = sha256_file(path) if with_hash and os.path.isfile(path) else None
    return *_probe(path), digest, None


def scan(paths: list[str], desc: str = "scan images", with_hash: bool = False,
         with_phash: bool = False) -> ScanResult:
    """Decode every file on a thread pool (Pillow and hashlib release the GIL) and collect all failures.

    `with_phash` also takes each file's sha256 and perceptual hash in the same visit (see duplicates.py).
    """
    workers = max(1, min(8, os.cpu_count() or 1))
    result = ScanResult(list(paths), [], {}, [], [])
    with ThreadPoolExecutor(workers) as pool:
        found = pool.map(lambda p: _inspect(p, with_hash, with_phash), paths)
        hashed = []
        for path, (size, reason, digest, file_hash) in zip(paths, tqdm(found, total=len(paths), desc=desc,
                                                                       unit="img", leave=False)):
            result.sizes.append(size)
            result.sha256.append(digest)
            hashed.append(file_hash or FileHash(digest, None, size))
            if reason is not None:
                result.bad[path] = reason
    result.phash = [f.phash for f in with_phashes(hashed)] if with_phash else [None] * len(paths)
    return result


def _cache_file(paths: list[str], cache_dir: Path, version: str = SCAN_VERSION, folder: str = "scans") -> Path | None:
    try:
        key = sha256_text(f"{version}|{data_fingerprint(paths)}")[:24]
    except OSError:
        return None  # a missing file: scan it uncached, so the scan can name it
    return Path(cache_dir) / folder / f"{key}.json"


def bad_images(paths: list[str], cache_dir: Path | None, desc: str = "scan images",
               with_hashes: bool = False) -> dict[str, str]:
    """path -> reason for every file that cannot be decoded; reuses an earlier verdict on the same files.

    `with_hashes` takes the duplicate hashes in the same pass and caches them for the files that
    decode (what the split is made on under either data.on_bad_image policy), so a first member
    visits each file once and every later one reads both caches.
    """
    cached = _cache_file(paths, cache_dir) if cache_dir is not None else None
    if cached is not None and cached.exists():
        try:
            return dict(json.loads(cached.read_text(encoding="utf-8"))["bad"])
        except (ValueError, KeyError, TypeError):
            pass  # an unreadable verdict is only a cache miss
    result = scan(paths, desc, with_phash=with_hashes and cache_dir is not None)
    bad = result.bad
    if cached is not None:
        atomic.write_text(cached, json.dumps({"n": len(paths), "bad": [[p, r] for p, r in bad.items()]}))
        if with_hashes:
            good = [i for i, p in enumerate(paths) if p not in bad]
            store_hashes([paths[i] for i in good], [result.sha256[i] for i in good],
                         [result.phash[i] for i in good], cache_dir)
    return bad


def file_hashes(paths: list[str], cache_dir: Path | None,
                desc: str = "hash images") -> tuple[list[str | None], list[str | None]]:
    """(sha256, perceptual hash) of every file, cached by the same fingerprint as the scan verdicts.

    The first member on a data set pays one thread-pooled pass (JPEGs decoded at 1/8 scale, like
    the scan); every later member, and check_data, reads the JSON back. A file that does not
    decode has a phash of None (the scan reports it); a missing one has neither.
    """
    cached = _cache_file(paths, cache_dir, HASH_VERSION, "hashes") if cache_dir is not None else None
    if cached is not None and cached.exists():
        try:
            stored = json.loads(cached.read_text(encoding="utf-8"))
            if stored["n"] == len(paths):
                return list(stored["sha256"]), list(stored["phash"])
        except (ValueError, KeyError, TypeError):
            pass  # an unreadable cache is only a miss
    workers = max(1, min(8, os.cpu_count() or 1))

    def one(path: str) -> FileHash:
        return hash_bytes(Path(path).read_bytes()) if os.path.isfile(path) else FileHash(None, None, None)

    with ThreadPoolExecutor(workers) as pool:
        found = with_phashes(list(tqdm(pool.map(one, paths), total=len(paths), desc=desc, unit="img", leave=False)))
    sha256, phash = [f.sha256 for f in found], [f.phash for f in found]
    store_hashes(paths, sha256, phash, cache_dir)
    return sha256, phash


def store_hashes(paths: list[str], sha256: list, phash: list, cache_dir: Path | None) -> None:
    cached = _cache_file(paths, cache_dir, HASH_VERSION, "hashes") if cache_dir is not None else None
    if cached is not None:
        atomic.write_text(cached, json.dumps({"n": len(paths), "sha256": sha256, "phash": phash}))


def describe(bad: dict[str, str], limit: int = LISTED) -> str:
    """'a.jpg (truncated file), b.png (empty file (0 bytes)) and 3 more' on one line."""
    named = [f"{path} ({reason})" for path, reason in list(bad.items())[:limit]]
    more = f" and {len(bad) - limit} more" if len(bad) > limit else ""
    return ", ".join(named) + more


def apply_policy(train: pd.DataFrame, policy: str, cache_dir: Path | None,
                 where: str = "the training data", with_hashes: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (rows to keep, skipped rows with a `reason` column) under `data.on_bad_image`.

    "error" refuses to start while any file is bad; "skip" drops the bad rows
    here, before a split is made or checked, so every member sees the same pool.
    """
    bad = bad_images(train["path"].tolist(), cache_dir, desc="scan training images", with_hashes=with_hashes)
    is_bad = train["path"].isin(bad)
    skipped = train.loc[is_bad, ["id", "path"]].assign(reason=lambda t: t["path"].map(bad))
    if not bad:
        return train, skipped
    if policy != "skip":
        raise UserError(f"{len(bad)} of {len(train)} images in {where} cannot be decoded: {describe(bad)}. "
                        f"Fix or remove them, or set data.on_bad_image=skip "
                        f"(python -m scripts.check_data lists them all)")
    if is_bad.all():
        raise UserError(f"every one of the {len(train)} images in {where} is bad, e.g. {describe(bad, 1)}")
    log.warning("data.on_bad_image=skip: skipping %d of %d images that cannot be decoded: %s",
                len(bad), len(train), describe(bad))
    return train.loc[~is_bad].reset_index(drop=True), skipped.reset_index(drop=True)


def require_readable(paths: list[str], where: str, cache_dir: Path | None) -> None:
    """A test list must decode in full: a submission needs a prediction for every row."""
    bad = bad_images(paths, cache_dir, desc="scan test images")
    if bad:
        raise UserError(f"{len(bad)} of {len(paths)} images in {where} cannot be decoded: {describe(bad)}; "
                        f"a submission needs every row, so fix or replace them")
