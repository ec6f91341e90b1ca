"""The registry under parallel writers and writers killed mid-write: real processes, real file locks."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.registry import Registry
from helpers import REPO

TESTS = Path(__file__).resolve().parent

# A writer as a user's training job is one: its own process, registering members one after another.
# It prints each name only after add() returned, so every printed name is a promise the registry must keep.
# With "slow", the file is written in small flushed chunks, as on a slow network disk, so that a random
# kill often lands while the new file is half-written rather than while YAML is parsed in memory.
WRITER = """
import sys, time
from pathlib import Path
from core import atomic
from core.registry import Registry
from registry_fixtures import entry
path, prefix, count, slow = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "slow"

def slow_write_text(target, text):
    with atomic.atomic_path(target) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for start in range(0, len(text), 4096):
                fh.write(text[start:start + 4096])
                fh.flush()
                time.sleep(0.002)
    return Path(target)

if slow:
    atomic.write_text = slow_write_text
registry = Registry(path)
for i in range(count):
    name = f"{prefix}-{i:04d}"
    registry.add(entry(name))
    print(name, flush=True)
"""


def _writer(registry: Path, prefix: str, count: int, slow: bool = False) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS)]))
    return subprocess.Popen([sys.executable, "-c", WRITER, str(registry), prefix, str(count), "slow" if slow else "-"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_eight_processes_registering_at_once_lose_nothing(tmp_path):
    registry = tmp_path / "shared" / "registry.yaml"
    writers = [_writer(registry, f"job{j}", 25) for j in range(8)]
    for proc in writers:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    names = [e.name for e in Registry(registry).members()]
    expected = {f"job{j}-{i:04d}" for j in range(8) for i in range(25)}
    assert len(names) == 200 and set(names) == expected
    assert not list(registry.parent.glob(".registry.yaml.*.tmp"))


def test_a_writer_killed_again_and_again_never_loses_a_registered_member(tmp_path):
    registry = tmp_path / "registry.yaml"
    promised: set[str] = set()
    rng = random.Random(7)
    kills_mid_run = kills_mid_file = 0
    for round_ in range(20):
        proc = _writer(registry, f"round{round_:02d}", 10_000, slow=True)
        # Wait for the writer to be inside its loop, then kill it at a random moment among its writes.
        first = proc.stdout.readline().strip()
        assert first, proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=60)
        kills_mid_run += proc.returncode == -signal.SIGKILL
        promised |= {first, *rest.split()}
        kills_mid_file += bool(list(tmp_path.glob(".registry.yaml.*.tmp")))
        # After every kill the file parses and holds every member whose add() returned.
        names = {e.name for e in Registry(registry).members()}
        missing = promised - names
        assert not missing, f"round {round_}: registered members lost: {sorted(missing)[:5]}"
    assert kills_mid_run == 20
    assert kills_mid_file >= 1, "no kill landed while the new file was being written; the test proved nothing"
    # The next writer sweeps the temporary files the killed ones left behind.
    last = _writer(registry, "after", 1)
    assert last.wait(timeout=60) == 0
    assert not list(tmp_path.glob(".registry.yaml.*.tmp"))
    assert len(Registry(registry).members()) >= len(promised) + 1


def test_a_lock_held_elsewhere_becomes_a_one_line_message(tmp_path):
    from filelock import FileLock

    from core.errors import UserError
    from registry_fixtures import entry

    registry = Registry(tmp_path / "registry.yaml", lock_timeout=0.3)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom filelock import FileLock\n"
                               "lock = FileLock(sys.argv[1]); lock.acquire(); print('held', flush=True); "
                               "time.sleep(120)", str(registry.lock_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError) as caught:
            registry.add(entry("blocked"))
        assert str(caught.value).startswith(f"registry is locked by another process for >0.3s: {registry.lock_path}")
        assert not registry.path.exists()
        # A holder that dies, even by SIGKILL, releases the OS lock at once: no stale lock blocks the next job.
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        registry.add(entry("after-the-crash"))
        assert [e.name for e in registry.members()] == ["after-the-crash"]
        assert FileLock(str(registry.lock_path)).acquire(timeout=0)  # nothing left holding it
    finally:
        holder.kill()
        holder.wait(timeout=30)


# Some network and FUSE file systems have no OS locks: flock fails with ENOSYS. These tests make it fail
# that way in every process involved; the registry must then still exclude, and still recover from crashes.
NO_FLOCK = """
import errno, fcntl
def _no_flock(fd, operation):
    raise OSError(errno.ENOSYS, "Function not implemented")
fcntl.flock = _no_flock
"""


@pytest.fixture
def no_os_locks(monkeypatch):
    import errno
    import fcntl

    def no_flock(fd, operation):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_flock)


def _hold_registry_lock(registry: Registry) -> subprocess.Popen:
    code = NO_FLOCK + ("import sys, time\nfrom core.registry import Registry\n"
                       "with Registry(sys.argv[1]).locked():\n"
                       "    print('held', flush=True)\n"
                       "    time.sleep(120)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    holder = subprocess.Popen([sys.executable, "-c", code, str(registry.path)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held", holder.stderr.read()
    return holder


def test_without_os_locks_jobs_still_exclude_each_other_and_a_killed_one_is_reclaimed(tmp_path, no_os_locks):
    from core.errors import UserError
    from registry_fixtures import entry

    registry = Registry(tmp_path / "registry.yaml", lock_timeout=0.5)
    holder = _hold_registry_lock(registry)
    try:
        with pytest.raises(UserError, match="registry is locked by another process for >0.5s: .*registry.yaml.softlock"):
            registry.add(entry("must-wait"))
        assert not registry.path.exists()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        assert (tmp_path / "registry.yaml.softlock").exists(), "the killed job's lock file is left behind"
        registry.add(entry("after-the-crash"))  # its owner is provably dead on this host: reclaimed
        assert [e.name for e in registry.members()] == ["after-the-crash"]
        assert not (tmp_path / "registry.yaml.softlock").exists()
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_without_os_locks_a_lock_file_from_another_machine_is_named(tmp_path, no_os_locks):
    from core.errors import UserError
    from registry_fixtures import entry

    registry = Registry(tmp_path / "registry.yaml", lock_timeout=0.3)
    soft = tmp_path / "registry.yaml.softlock"
    # A job on another machine was killed while holding the lock; from here its death cannot be proven.
    soft.write_text("4242\nanother-machine\n")
    with pytest.raises(UserError) as caught:
        registry.add(entry("blocked"))
    assert str(caught.value) == (f"registry is locked by another process for >0.3s: {soft} "
                                 f"(if no other job is running, delete that lock file)")
    soft.unlink()  # what the message tells the user to do
    registry.add(entry("unblocked"))
    assert [e.name for e in registry.members()] == ["unblocked"]
