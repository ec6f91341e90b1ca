"""Writes that either land whole or leave the previous file untouched."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from core import leftovers
from core.errors import UserError

TEMP_SUFFIX = ".tmp"

# What the user can do about each way a write fails; anything else falls back to the OS's own words.
_HINTS = {
    errno.EACCES: "no write permission; choose another output folder (VOTE_OUTPUT_ROOT) or fix its permissions",
    errno.EPERM: "no write permission; choose another output folder (VOTE_OUTPUT_ROOT) or fix its permissions",
    errno.EROFS: "the file system is read-only; choose another output folder (VOTE_OUTPUT_ROOT)",
    errno.ENOSPC: "the disk is full; free space and run again (a training continues with --resume)",
    errno.EDQUOT: "the disk quota is used up; free space and run again",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another output folder or move that file",
    errno.EEXIST: "a part of the path is a file, not a folder; choose another output folder or move that file",
    errno.EISDIR: "it is a folder; choose a file name",
    errno.ENAMETOOLONG: "the path is too long; choose a shorter output folder or name",
    errno.EFBIG: "the file is larger than this system allows (see `ulimit -f`); raise the limit or write elsewhere",
}


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of `path`, if it is a file rather than a folder."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def explain_write_error(path: str | os.PathLike, err: OSError) -> UserError:
    """Turn an OSError from writing `path` into one line that says what to do."""
    hint = _HINTS.get(err.errno) or err.strerror or str(err)
    if err.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = _file_in_the_way(Path(path))
        if blocker is not None:
            hint = f"{blocker} is a file, not a folder; choose another output folder or move that file"
    return UserError(f"cannot write {path}: {hint} (nothing was changed)")


def kind_problem(path: str | os.PathLike) -> str | None:
    """Why an existing `path` may not be replaced by a written file, or None (absent, or a regular file).

    A device node, FIFO or socket given as an output would be swapped for a regular file (as root,
    `/dev/null` itself); a folder would be refused by the rename anyway, but say so before any work.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # absent, or a parent is not a folder: the write itself says what to do
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "it is a folder; choose a file name"
    return "it is not a regular file (a device, FIFO or socket); outputs are written only over regular files"


def check_replaceable(paths: list[Path], overwrite: bool) -> None:
    """Refuse, before anything is written, every target a command may not replace: anything but a regular
    file or a folder; and, without --overwrite, any that exists (a folder counts when it holds anything).
    A command passes every path it would replace, so no file is replaced silently beside the one named."""
    for path in map(Path, paths):
        if path.is_dir():
            if any(path.iterdir()) and not overwrite:
                raise UserError(f"{path} already exists; pass --overwrite to replace it")
            continue
        problem = kind_problem(path)
        if problem:
            raise UserError(f"cannot write {path}: {problem} (nothing was changed)")
        if path.exists() and not overwrite:
            raise UserError(f"{path} already exists; pass --overwrite to replace it")


def check_folder_target(folder: str | os.PathLike, marker: str, what: str) -> Path:
    """Refuse a folder target that this project did not make: a file, or a non-empty folder without `marker`.

    Only a folder that carries the marker file its builder writes is ever replaced whole; no guess from
    what else it holds (a user's folder with a report.md in it is still the user's).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{what} {folder} is a file; choose another folder")
    if folder.is_dir() and not (folder / marker).is_file() and any(folder.iterdir()):
        raise UserError(f"{what} {folder} exists and is not a {what} this project made (no {marker}); it is "
                        f"never replaced: choose another --name or --out/--report")
    return folder


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create a folder (and its parents) or explain in one line why it cannot be created."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise explain_write_error(path, err) from err
    return path


def temp_name_pattern(path: Path) -> str:
    """Glob for the temporary siblings `atomic_path` makes for `path`."""
    return f".{path.name}.*{TEMP_SUFFIX}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, tagged: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only on success.

    The temporary file lives in the same folder so the final rename is atomic
    on every OS; on any failure it is removed and the old file stays as it was.
    `tagged` puts the writer's host and pid in its name (see core.leftovers), so a
    later writer can sweep it if this one is killed, without holding a lock.
    """
    path = Path(path)
    prefix = f".{path.name}.{leftovers.owner_tag()}-" if tagged else f".{path.name}."
    _refuse_special(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise explain_write_error(path, err) from err
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync(tmp)
        _default_permissions(tmp)
        _refuse_special(path)  # again: a FIFO may have been put there while the file was written
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise explain_write_error(path, err) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _refuse_special(path: Path) -> None:
    problem = kind_problem(path)
    if problem:
        raise UserError(f"cannot write {path}: {problem} (nothing was changed)")


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden sibling folder to build `path` in; swap it in whole only on success.

    The stage and the set-aside old folder carry the writer's tag (core.leftovers), so a later
    build sweeps what a killed one left. On any failure the stage is removed and `path` stays as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.{leftovers.owner_tag()}-", suffix=TEMP_SUFFIX,
                                      dir=path.parent))
        # mkdtemp makes a private folder; outputs are shared like any other file.
        os.chmod(stage, 0o777 & ~_UMASK)
    except OSError as err:
        raise explain_write_error(path, err) from err
    try:
        yield stage
        old = path.with_name(f".{path.name}.{leftovers.owner_tag()}-{uuid.uuid4().hex[:8]}.old")
        if path.exists():
            os.replace(path, old)
        os.replace(stage, path)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        shutil.rmtree(stage, ignore_errors=True)
        raise explain_write_error(path, err) from err
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _fsync_folder(path.parent)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which would race with other threads.
_UMASK = _current_umask()


def _default_permissions(path: Path) -> None:
    # mkstemp creates 0600 files; outputs are shared with teammates, so give them what open() would.
    os.chmod(path, 0o666 & ~_UMASK)


def _fsync(path: Path) -> None:
    # Data must be on disk before the rename, or a power cut can leave a renamed but empty file.
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; folders cannot be opened for fsync on Windows, where NTFS journals it anyway.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete temporary files that writers of `path` left when they were killed mid-write.

    Call it only while holding a lock that every writer of `path` takes: a live
    writer's temporary file would otherwise be deleted under it.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(temp_name_pattern(path)):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def remove_dead_writers_temps(path: str | os.PathLike) -> list[Path]:
    """Delete the tagged temporary siblings of `path` whose writer (on this host) is dead; no lock needed."""
    removed = []
    for tmp in leftovers.stale_siblings(Path(path), (TEMP_SUFFIX,)):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
