"""Writes that either land whole or leave the previous file untouched."""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterator

from core.errors import UserError


def _explain(path: Path, err: OSError) -> UserError:
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "no write permission; choose another output folder or fix its permissions"
    elif err.errno == errno.ENOSPC:
        hint = "the disk is full; free space and run again"
    else:
        hint = err.strerror or str(err)
    return UserError(f"cannot write {path}: {hint} (nothing was changed)")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only on success.

    The temporary file lives in the same folder so the final rename is atomic
    on every OS; on any failure it is removed and the old file stays as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise _explain(path, err) from err
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise _explain(path, err) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
