"""`--wandb offline` writes nothing under $HOME: logs, staging copies, cache and settings stay in the output."""
from __future__ import annotations

import os

from test_report_wandb import logged


def test_offline_logging_leaves_home_empty(tmp_path, monkeypatch, digits_root):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    # No folder named by the user: set to empty first so monkeypatch restores "unset" afterwards
    # (keep_inside fills them in os.environ for the run).
    for var in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "XDG_CACHE_HOME",
                "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    out = tmp_path / "logs"
    out.mkdir()
    _, _, folder = logged(out, digits_root, "offline")
    assert folder is not None and folder.is_relative_to(out) and any(folder.glob("run-*.wandb"))
    written = [os.path.join(root, name) for root, dirs, files in os.walk(home) for name in files + dirs]
    assert written == [], written
