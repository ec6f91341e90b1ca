"""What is already done for a planned member: a registered entry, or an `_incomplete` run folder to resume."""
from __future__ import annotations

import re
from pathlib import Path

from core.config import load_config, to_dict
from core.entry import RegistryEntry
from core.errors import UserError
from core.registry import Registry
from launch.plan_file import config_hash

INCOMPLETE = "_incomplete"  # members/run_folder.py names unfinished runs so


def _in_folder_name(name: str) -> str:
    """The member name as run folders spell it (members/run_folder.safe_part; launch/ may not import members/)."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", name).strip("-") or "x"


def folder_hash(config_file: Path) -> str | None:
    """The derived-config hash of a run folder's config.yaml (None when it cannot be read)."""
    try:
        return config_hash(to_dict(load_config(config_file)))
    except (UserError, OSError):
        return None


def registered_hash(registry: Registry, entry: RegistryEntry) -> str | None:
    return folder_hash(registry.resolve(entry.config))


def incomplete_run(runs_root: Path, name: str, wanted: str) -> Path | None:
    """The newest `_incomplete` run folder of this member with the same derived config and a `last` to resume."""
    found = []
    for folder in Path(runs_root).glob(f"*/*_{_in_folder_name(name)}_*{INCOMPLETE}"):
        if (folder / "last_state.json").is_file() and folder_hash(folder / "config.yaml") == wanted:
            found.append(folder)
    return max(found, key=lambda f: (f.parent.name, f.name)) if found else None


def newest_run(runs_root: Path, name: str, since: float) -> Path | None:
    """The run folder a member's training process made after `since` (for the table's epoch column)."""
    found = [f for f in Path(runs_root).glob(f"*/*_{_in_folder_name(name)}_*") if f.is_dir() and f.stat().st_mtime >= since - 1]
    return max(found, key=lambda f: f.stat().st_mtime) if found else None
