"""Temporary files and folders that carry their writer's host and pid, so a later run can sweep
the leftovers of a writer that was killed, without a lock file and without touching a live one's.

A tag looks like `<host hash>-<pid>`; a leftover is stale when its host is this machine and its
pid is no longer alive. Leftovers of other machines (a shared folder) are left alone: their
writers' lives cannot be seen from here.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

from core.hashing import sha256_text


def _host() -> str:
    return sha256_text(socket.gethostname())[:8]


def owner_tag() -> str:
    return f"{_host()}-{os.getpid()}"


def is_stale(tag: str) -> bool:
    """True for a tag (possibly followed by '-<anything>') of a dead process on this host."""
    host, _, rest = tag.partition("-")
    pid = rest.partition("-")[0]
    if host != _host() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, but another user's
    return False


def stale_siblings(target: Path, kinds: tuple[str, ...] = (".tmp",)) -> list[Path]:
    """Leftovers beside `target` named `.<target name>.<tag>-<random><kind>` whose writer is dead."""
    prefix = f".{target.name}."
    found = []
    if not target.parent.is_dir():
        return found
    for path in target.parent.iterdir():
        if not path.name.startswith(prefix):
            continue
        middle = path.name[len(prefix):]
        kind = next((k for k in kinds if middle.endswith(k)), None)
        if kind is not None and is_stale(middle[: -len(kind)].removeprefix("old-")):
            found.append(path)
    return found
