"""Which wandb mode a run really gets: online needs a login, else offline (never an interactive prompt)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("vote")


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
