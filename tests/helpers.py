"""Helpers for tests that run the real command-line scripts."""
from __future__ import annotations

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
