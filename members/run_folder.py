"""Run folders: runs/<YYYY-MM-DD>/<HHMMSS>_<name>_<arch>_<metric>-<value>/.

A run starts in `<HHMMSS>_<name>_<arch>_incomplete` and is renamed to carry its
metric only when it finishes, so a crashed run is never mistaken for a result.
Folders are claimed with an exclusive mkdir, so two runs that start in the same
second get different folders instead of sharing one.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

INCOMPLETE = "incomplete"


def safe_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-") or "x"


def _claim(parent: Path, stem: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 10_000):
        candidate = parent / (stem if attempt == 1 else f"{stem}-{attempt}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not claim a run folder under {parent}")


def create_run_folder(runs_root: Path, name: str, arch: str, now: datetime | None = None) -> Path:
    now = now or datetime.now(timezone.utc)
    stem = f"{now:%H%M%S}_{safe_part(name)}_{safe_part(arch)}_{INCOMPLETE}"
    return _claim(Path(runs_root) / f"{now:%Y-%m-%d}", stem)


def finish_run_folder(folder: Path, metric: str, value: float) -> Path:
    """Rename the folder to carry its result; never overwrite another run's folder."""
    short = metric.removeprefix("val_").replace("_macro", "")
    base = folder.name[: -len(INCOMPLETE)] + f"{safe_part(short)}-{value:.4f}"
    for attempt in range(1, 10_000):
        target = folder.parent / (base if attempt == 1 else f"{base}-{attempt}")
        if target.exists():
            continue
        folder.rename(target)
        return target
    raise RuntimeError(f"could not name finished run {folder}")
