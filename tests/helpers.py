"""Helpers for tests that run the real command-line scripts."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_script(module: str, *args: str, env: dict | None = None, check: bool = True, cwd: Path | None = None,
               timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m scripts.<module>` the way a user does, with this test's environment."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", f"scripts.{module}", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"scripts.{module} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def train_in_process(*args: str, env: dict) -> str:
    """`python -m scripts.train ARGS` as scripts.train.main(ARGS) in this process, with `env` set, the repo as
    working folder and one torch thread: the same job a user's command runs, without a new interpreter that
    imports torch again (5-10 s each). For fixtures whose checks read the results, not the process; returns
    stdout. Global torch settings a run changes are put back, so later tests see this process as it was."""
    import pytest
    import torch

    import scripts.train

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    out, err = io.StringIO(), io.StringIO()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            for key, value in {"OMP_NUM_THREADS": "1", **env}.items():
                mp.setenv(key, value)
            mp.chdir(REPO)
            code = scripts.train.main(list(args))
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    if code != 0:
        raise AssertionError(f"scripts.train.main exited {code}\nstdout:\n{out.getvalue()}\nstderr:\n{err.getvalue()}")
    return out.getvalue()
