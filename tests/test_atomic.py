"""Writes through core.atomic land whole or not at all, and a failed write says what to do."""
from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
from pathlib import Path

import pytest

from core import atomic
from core.errors import UserError


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


@pytest.fixture
def folder(tmp_path) -> Path:
    """An empty folder of its own (tmp_path also holds the session's output root)."""
    path = tmp_path / "work"
    path.mkdir()
    return path


def _fail_after_half(monkeypatch, err_no: int) -> None:
    """Make Path.write_text write half its text, then fail the way a full or forbidden disk does."""
    real = Path.write_text

    def half_then_fail(self, data, *args, **kwargs):
        real(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(err_no, os.strerror(err_no), str(self))

    monkeypatch.setattr(Path, "write_text", half_then_fail)


@pytest.mark.parametrize("err_no, hint", [(errno.ENOSPC, "disk is full; free space"),
                                          (errno.EDQUOT, "quota"),
                                          (errno.EACCES, "no write permission")])
def test_a_failed_write_keeps_the_old_file_and_says_what_to_do(folder, monkeypatch, err_no, hint):
    target = folder / "registry.yaml"
    target.write_text("old contents\n", encoding="utf-8")
    _fail_after_half(monkeypatch, err_no)
    with pytest.raises(UserError) as caught:
        atomic.write_text(target, "new contents that will not fit\n" * 100)
    monkeypatch.undo()
    message = str(caught.value)
    assert str(target) in message and hint in message and "nothing was changed" in message
    assert "\n" not in message
    assert target.read_text(encoding="utf-8") == "old contents\n"
    assert _siblings(target) == ["registry.yaml"], "the temporary file must be removed"


def test_a_full_disk_at_fsync_time_keeps_the_old_file(folder, monkeypatch):
    # Some file systems (NFS, delayed allocation) only report ENOSPC when the data is flushed.
    target = folder / "sub.csv"
    target.write_bytes(b"ImageID,ans\na.jpg,1\n")

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(UserError, match="disk is full"):
        atomic.write_bytes(target, b"ImageID,ans\na.jpg,2\n")
    monkeypatch.undo()
    assert target.read_bytes() == b"ImageID,ans\na.jpg,1\n"
    assert _siblings(target) == ["sub.csv"]


def test_an_exception_inside_the_block_leaves_nothing_behind(folder):
    target = folder / "weights.safetensors"
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_path(target) as tmp:
            tmp.write_bytes(b"half a checkpoint")
            raise KeyboardInterrupt
    assert list(folder.iterdir()) == []


def test_a_parent_that_is_a_file_is_explained(folder):
    # Root ignores permission bits, so this is the unwritable output folder a test can build for every user.
    blocker = folder / "outputs"
    blocker.write_text("I am a file, not a folder\n")
    for target in (blocker / "submissions" / "x.csv", blocker / "x.csv"):
        with pytest.raises(UserError) as caught:
            atomic.write_text(target, "data")
        assert f"{target}: {blocker} is a file, not a folder" in str(caught.value)
    with pytest.raises(UserError, match=f"{blocker} is a file, not a folder"):
        atomic.ensure_dir(blocker / "runs")
    assert blocker.read_text() == "I am a file, not a folder\n"


def test_a_target_that_is_a_folder_is_explained(folder):
    (folder / "report.md").mkdir()
    with pytest.raises(UserError, match="it is a folder"):
        atomic.write_text(folder / "report.md", "x")
    assert (folder / "report.md").is_dir()
    assert _siblings(folder / "report.md") == ["report.md"]


def test_the_write_replaces_the_file_whole(folder):
    target = folder / "a" / "b.txt"
    atomic.write_text(target, "first")
    atomic.write_text(target, "second")
    assert target.read_text() == "second"
    assert _siblings(target) == ["b.txt"]


def test_stale_temporaries_are_swept_only_for_their_own_file(folder):
    target = folder / "registry.yaml"
    stale = folder / ".registry.yaml.abc123.tmp"
    other = folder / ".other.yaml.abc123.tmp"
    stale.write_text("left by a killed writer")
    other.write_text("someone else's")
    assert atomic.remove_stale_temps(target) == [stale]
    assert not stale.exists() and other.exists()


@contextlib.contextmanager
def file_size_limit(limit: int):
    """A real failing write, no mocks: the kernel refuses to grow any file past `limit` bytes (EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write() instead of killing the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_registry_write_that_the_kernel_refuses_keeps_every_member(folder):
    from core.registry import Registry
    from registry_fixtures import entry

    registry = Registry(folder / "registry.yaml")
    for i in range(3):
        registry.add(entry(f"m{i}"))
    before = registry.path.read_bytes()
    with file_size_limit(len(before) + 100), pytest.raises(UserError) as caught:
        registry.add(entry("one-too-many"))
    assert "larger than this system allows" in str(caught.value) and "nothing was changed" in str(caught.value)
    assert registry.path.read_bytes() == before
    assert [e.name for e in registry.members()] == ["m0", "m1", "m2"]
    assert not list(folder.glob(".registry.yaml.*.tmp"))
