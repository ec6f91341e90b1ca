"""Decode each image once per size into a uint8 memmap that every member and epoch reuses.

The cache key is the file list (path, byte size, mtime) plus the target size, so
it is rebuilt only when the data changes. Memory stays bounded by the memmap.
"""
from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from core import atomic
from core.errors import UserError
from core.hashing import sha256_text
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


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


# Kept free beside a new cache file, so filling the cache never fills the disk the outputs live on.
HEADROOM_BYTES = 1 << 30


def check_room(n_images: int, height: int, width: int, cache_dir: Path) -> int:
    """The bytes a cache file for these images needs; refuse, with the figure, when the disk lacks them.

    The memmap is sparse when created, so without this a huge size would 'succeed' and then fail
    (or be killed) hours into decoding, leaving a terabyte-sized temporary file behind.
    """
    needed = n_images * height * width * 3 + 128  # + the .npy header
    free = shutil.disk_usage(cache_dir).free
    if needed + HEADROOM_BYTES > free:
        raise UserError(f"the image cache for {n_images} images at {height}x{width} needs {_human(needed)}, but "
                        f"{cache_dir} has {_human(free)} free (1 GB is kept spare); use a smaller input size, "
                        f"fewer images, or point VOTE_OUTPUT_ROOT at a larger disk")
    return needed


def sweep_stale_temps(cache_dir: Path) -> list[Path]:
    """Delete temporary cache files whose writer died: each is guarded by its cache file's lock, so a temp
    whose lock can be taken at once has no live writer."""
    removed = []
    for tmp in Path(cache_dir).glob(f".*.u8.*{atomic.TEMP_SUFFIX}"):
        data_path = tmp.with_name(tmp.name[1:].split(".u8.", 1)[0] + ".u8")
        lock = FileLock(str(data_path) + ".lock", timeout=0)
        try:
            with lock:
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
        except Timeout:
            continue  # a live writer holds it
    return removed


def decoded_images(paths: list[str], size: tuple[int, int], cache_dir: Path, desc: str = "decode") -> np.ndarray:
    """Return a read-only [N, H, W, 3] uint8 array, decoding only on the first call."""
    height, width = int(size[0]), int(size[1])
    key = sha256_text(f"{data_fingerprint(paths)}|{height}x{width}")[:24]
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    data_path = cache_dir / f"{key}_{height}x{width}.u8"
    meta_path = data_path.with_suffix(".json")
    shape = (len(paths), height, width, 3)
    if not meta_path.exists():
        sweep_stale_temps(cache_dir)
    with FileLock(str(data_path) + ".lock", timeout=3600):
        if not meta_path.exists():
            check_room(len(paths), height, width, cache_dir)
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
