"""Decode each image once per size into a uint8 memmap that every member and epoch reuses.

The cache key is the file list (path, byte size, mtime) plus the target size, so
it is rebuilt only when the data changes. Memory stays bounded by the memmap.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from filelock import FileLock
from tqdm.auto import tqdm

from core import atomic
from core.hashing import sha256_text
from core.errors import UserError
from core.images import BadImageError, load_resized


def data_fingerprint(paths: list[str]) -> str:
    """Cheap identity of a file list: names, sizes and modification times, in order."""
    parts = []
    for p in paths:
        st = os.stat(p)
        parts.append(f"{Path(p).as_posix()}|{st.st_size}|{st.st_mtime_ns}")
    return sha256_text("\n".join(parts))


def _decode_or_reason(path: str, size: tuple[int, int]) -> np.ndarray | str:
    try:
        return load_resized(path, size)
    except BadImageError as err:
        return f"{path} ({err.reason})"


def _decode_into(out: np.ndarray, paths: list[str], size: tuple[int, int], desc: str) -> None:
    # PIL releases the GIL while decoding, so threads scale with cores without pickling arrays.
    workers = max(1, min(8, os.cpu_count() or 1))
    failures: list[str] = []
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda p: _decode_or_reason(p, size), paths)
        for i, arr in enumerate(tqdm(results, total=len(paths), desc=desc, unit="img", leave=False)):
            if isinstance(arr, str):
                failures.append(arr)
            else:
                out[i] = arr
    if failures:
        # Every bad file in one message, so a user fixes them all in one go; nothing is cached.
        more = f" and {len(failures) - 5} more" if len(failures) > 5 else ""
        raise UserError(f"{len(failures)} of {len(paths)} images cannot be decoded: {', '.join(failures[:5])}{more}")


def decoded_images(paths: list[str], size: tuple[int, int], cache_dir: Path, desc: str = "decode") -> np.ndarray:
    """Return a read-only [N, H, W, 3] uint8 array, decoding only on the first call."""
    height, width = int(size[0]), int(size[1])
    key = sha256_text(f"{data_fingerprint(paths)}|{height}x{width}")[:24]
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    data_path = cache_dir / f"{key}_{height}x{width}.u8"
    meta_path = data_path.with_suffix(".json")
    shape = (len(paths), height, width, 3)
    with FileLock(str(data_path) + ".lock", timeout=3600):
        if not meta_path.exists():
            with atomic.atomic_path(data_path) as tmp:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
                _decode_into(out, paths, (height, width), desc)
                out.flush()
                del out
            atomic.write_text(meta_path, json.dumps({"n": len(paths), "size": [height, width], "files": len(paths)}))
    images = np.load(data_path, mmap_mode="r")
    if images.shape != shape:
        raise RuntimeError(f"image cache {data_path} has shape {images.shape}, expected {shape}")
    return images


def cache_bytes(images: np.ndarray) -> int:
    return int(np.prod(images.shape))
