"""The member registry: one YAML file, validated on read, written atomically under a lock.

Paths inside entries are relative to the registry file so a project folder can
move between machines and operating systems.

What it promises, and why:
- Every writer takes `registry.yaml.lock` (an OS file lock through filelock),
  re-reads the file under it and replaces it atomically, so parallel trainers
  on one machine or on several machines sharing a folder never lose an entry.
- A writer killed at any moment leaves either the old or the new file, never a
  half-written one; its temporary file is swept by the next writer.
- The OS drops a dead process's lock, so a killed job never blocks the others.
  Where the file system has no OS locks (some FUSE, SMB or `nolock` NFS mounts
  report ENOSYS/ENOLCK), `registry.yaml.softlock` is created exclusively and
  holds the owner's pid and host; a dead owner on the same host is detected,
  one on another machine cannot be, and the timeout message names the file.
  (filelock's own automatic fallback is switched off: in filelock 4.0.8 a
  second process falling back unlinks the first one's live lock file.)
- Entries are validated field by field when read: a hand-edited or shared
  registry cannot point outside its folder (no absolute paths, no '..'), and
  member names cannot escape the cache folders they name.
"""
from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import filelock
import yaml

from core import atomic, files
from core.entry import InferenceCost, RegistryEntry
from core.errors import UserError

VERSION = 1
LOCK_TIMEOUT_S = 120.0

# What flock raises on a file system that has no OS locks at all.
NO_OS_LOCKS = {errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP}

# The C parser is ~10x faster on a registry of hundreds of entries; both are the safe subset of YAML.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Writes every value out: the reader refuses aliases, so a list shared by two entries is written twice."""

    def ignore_aliases(self, data) -> bool:  # noqa: ANN001  (PyYAML's signature)
        return True


REGISTRY_MAX_BYTES = 256 * files.MiB  # ~100 000 entries; a bigger file is not a registry


def _has_alias(text: str) -> bool:
    """Whether the YAML holds an alias; the C parser is kept for speed, its event stream says so cheaply."""
    return "*" in text and any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=_Loader))


class Registry:
    def __init__(self, path: str | Path, lock_timeout: float = LOCK_TIMEOUT_S):
        self.path = Path(path).resolve()
        self.lock_path = Path(str(self.path) + ".lock")
        self.lock_timeout = lock_timeout
        # A short poll hands the lock on quickly when many jobs finish at once; each poll is one cheap syscall.
        self.lock: filelock.BaseFileLock = filelock.FileLock(str(self.lock_path), timeout=lock_timeout,
                                                             poll_interval=0.01, fallback_to_soft=False)

    @classmethod
    def chosen(cls, given: str | Path | None, settings) -> Registry:
        """The registry a command names with --registry, else the machine's default (<output root>/registry.yaml):
        the one place that choice is made."""
        return cls(given or settings.registry)

    def resolve(self, relative: str) -> Path:
        return (self.path.parent / Path(relative)).resolve()

    def relative(self, path: str | Path) -> str:
        """Store paths POSIX-style relative to the registry so they survive a move."""
        path = Path(path).resolve()
        try:
            return path.relative_to(self.path.parent).as_posix()
        except ValueError:
            raise UserError(f"{path} is outside the registry's folder {self.path.parent}; keep the registry file "
                            f"at or above the runs folder (the default <output root>/registry.yaml does)") from None

    def _acquire(self) -> None:
        try:
            self.lock.acquire()
        except OSError as err:
            if err.errno not in NO_OS_LOCKS:
                raise
            # Every job on this file system gets the same errno, so they all meet on the same lock file.
            soft = Path(str(self.path) + ".softlock")
            self.lock = filelock.SoftFileLock(str(soft), timeout=self.lock_timeout, poll_interval=0.01)
            self.lock.acquire()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the registry's lock; a holder that never lets go becomes a one-line error, not a hang."""
        try:
            self._acquire()
        except filelock.Timeout:
            raise UserError(f"registry is locked by another process for >{self.lock_timeout:g}s: "
                            f"{self.lock.lock_file} (if no other job is running, delete that lock file)") from None
        except OSError as err:
            raise atomic.explain_write_error(self.lock.lock_file, err) from err
        try:
            yield
        finally:
            self.lock.release()

    def members(self) -> list[RegistryEntry]:
        """Every member as a typed entry, each checked field by field (core.entry) when read."""
        if not self.path.exists():
            raise UserError(f"no registry at {self.path}; train a member first")
        # A regular file of bounded size, UTF-8: a FIFO, /dev/zero or a folder is one line, not a hang.
        return self._parse(files.read_text(self.path, "registry", REGISTRY_MAX_BYTES))

    def _parse(self, text: str) -> list[RegistryEntry]:
        if not text.strip():
            raise UserError(f"{self.path} is empty; expected 'version: {VERSION}' and a 'members' list")
        try:
            data = yaml.load(text, Loader=_Loader)
            if _has_alias(text):
                raise UserError(f"{self.path}: aliases (*name) are not allowed in a registry")
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            problem = f" ({err.problem})" if getattr(err, "problem", None) else ""
            raise UserError(f"{self.path} is not valid YAML{where}{problem}") from err
        if not isinstance(data, dict) or "members" not in data:
            raise UserError(f"{self.path} must be a mapping with 'version' and 'members'")
        if data.get("version") != VERSION:
            raise UserError(f"{self.path} has version {data.get('version')!r}; this tool reads version {VERSION}")
        stored = data["members"] or []
        if not isinstance(stored, list):
            raise UserError(f"{self.path}: 'members' must be a list")
        entries = [RegistryEntry.from_dict(e, f"{self.path} member #{i + 1}") for i, e in enumerate(stored)]
        seen: set[str] = set()
        for entry in entries:
            if entry.name in seen:
                raise UserError(f"{self.path}: member name '{entry.name}' appears twice")
            seen.add(entry.name)
        return entries

    def get(self, name: str) -> RegistryEntry:
        members = self.members()
        for entry in members:
            if entry.name == name:
                return entry
        known = ", ".join(e.name for e in members) or "none"
        raise UserError(f"member '{name}' is not in {self.path} (registered: {known})")

    def _write(self, entries: list[RegistryEntry]) -> None:
        text = yaml.dump({"version": VERSION, "members": [e.to_dict() for e in entries]}, Dumper=_Dumper,
                         sort_keys=False, allow_unicode=True)
        # Only lock holders write, so any temporary sibling now belongs to a writer that was killed.
        atomic.remove_stale_temps(self.path)
        atomic.write_text(self.path, text)

    def add(self, entry: dict | RegistryEntry) -> None:
        """Register one member; a mapping (as a job builds it) is checked like an entry read from the file."""
        if not isinstance(entry, RegistryEntry):
            entry = RegistryEntry.new(entry)
        atomic.ensure_dir(self.path.parent)
        with self.locked():
            entries = self.members() if self.path.exists() else []
            if any(e.name == entry.name for e in entries):
                raise UserError(
                    f"member '{entry.name}' is already in {self.path}; choose another name or remove it first"
                )
            self._write(entries + [entry])

    def remove(self, name: str) -> RegistryEntry:
        with self.locked():
            entries = self.members()
            kept = [e for e in entries if e.name != name]
            if len(kept) == len(entries):
                self.get(name)  # raises the standard "not registered" message
            self._write(kept)
            return next(e for e in entries if e.name == name)

    def set_inference(self, costs: dict[str, dict]) -> None:
        """Record members' measured inference costs (RegistryEntry.inference), all in one locked write.

        The file is re-read under the lock (a read-modify-write, not a lookup): another job may have
        registered a member since the caller read it. Members no longer registered are skipped."""
        checked = {name: InferenceCost.from_dict(cost) for name, cost in costs.items()}  # before the file is touched
        with self.locked():
            entries = self._parse(self.path.read_text(encoding="utf-8"))
            self._write([replace(e, inference=checked[e.name]) if e.name in checked else e for e in entries])

    def exists(self, name: str) -> bool:
        return self.path.exists() and any(e.name == name for e in self.members())
