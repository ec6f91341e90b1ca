"""Shared fixtures: every test gets its own output root, data root and offline tracking."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Outputs, data, wandb and the local settings file all live under tmp_path."""
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("VOTE_OUTPUT_ROOT", str(out))
    monkeypatch.setenv("VOTE_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("VOTE_LOCAL_CONFIG", str(tmp_path / "no-local.yaml"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    # Hub weights (model.pretrained) come only from caches the tests build: never the network, never ~/.cache.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.chdir(tmp_path)
    return out


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory) -> Path:
    """The embedded digits data written once per test session (real PNG files)."""
    from imagedata.digits import ensure_digits

    return ensure_digits(tmp_path_factory.mktemp("shared-data") / "digits")
