"""Shared fixtures: every test gets its own output root, data root and offline tracking."""
from __future__ import annotations

import inspect
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


# Calls that make a test slow: a training run or a new Python process (each one imports torch again).
# A test is marked `slow` when its body, one of its fixtures, or a helper function they call (found by
# name in tests/) contains one of these, so a new test that trains or runs a script is marked without
# anyone remembering to; `@pytest.mark.slow` marks by hand what this cannot see.
SLOW_CALLS = ("run_script(", "subprocess.", "train_member(", "train_command(", "Trainer(", "torchrun",
              "scripts.train.main(", "scripts.distill.main(", "train_main(", "train_in_process(")
TESTS = Path(__file__).resolve().parent


def _source(fn) -> str:
    try:
        return inspect.getsource(fn) if str(inspect.getsourcefile(fn) or "").startswith(str(TESTS)) else ""
    except (OSError, TypeError):
        return ""


def _helpers(fn) -> dict:
    """Functions of the tests folder that `fn` can see by name (its module's globals)."""
    names = getattr(fn, "__globals__", {})
    return {k: v for k, v in names.items() if inspect.isfunction(v) and _source(v)}


def _calls_slow(start: list) -> bool:
    seen, todo = set(), list(start)
    while todo:
        fn = inspect.unwrap(todo.pop())
        if fn in seen:
            continue
        seen.add(fn)
        text = _source(fn)
        if any(call in text for call in SLOW_CALLS):
            return True
        todo.extend(h for name, h in _helpers(fn).items() if f"{name}(" in text)
    return False


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") or not isinstance(item, pytest.Function):
            continue
        fixtures = [d.func for defs in item._fixtureinfo.name2fixturedefs.values() for d in defs]
        if _calls_slow([item.function, *fixtures]):
            item.add_marker(pytest.mark.slow)
