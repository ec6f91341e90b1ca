"""Which wandb mode a run really gets: online needs a login, else offline (never an interactive prompt)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("vote")

MODES = ("disabled", "offline", "online")  # what --wandb accepts


def _logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    return netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def effective_mode(requested: str) -> str:
    """Online only works with a login; without one we fall back to offline instead of prompting."""
    if requested == "online" and not _logged_in():
        log.info("wandb: no login found, logging offline (sync later with `wandb sync`)")
        return "offline"
    return requested


# wandb keeps artifact staging copies, its cache and its settings under $HOME unless told otherwise.
_HOME_DIRS = {"WANDB_CACHE_DIR": "cache", "WANDB_DATA_DIR": "data", "WANDB_CONFIG_DIR": "config"}


def keep_inside(folder: str | os.PathLike) -> None:
    """Before wandb.init: everything wandb writes goes under `folder` (inside the output root), not $HOME,
    unless the user named those folders; and an empty WANDB_MODE (`WANDB_MODE=`) counts as unset, where
    wandb itself would fail after the outputs were already committed."""
    if os.environ.get("WANDB_MODE") is not None and not os.environ["WANDB_MODE"].strip():
        del os.environ["WANDB_MODE"]
    for var, sub in _HOME_DIRS.items():
        if not os.environ.get(var):
            os.environ[var] = str(Path(folder) / ".wandb-home" / sub)
