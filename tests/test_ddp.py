"""One member on two CPU processes (torchrun, gloo): trained once, validated on the whole set, registered once."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from core.registry import Registry
from helpers import REPO
from training_fixture import member_config, one_thread, write_shapes


@pytest.fixture(autouse=True)
def quiet_cpu(monkeypatch):
    one_thread(monkeypatch)


def test_two_gloo_processes_register_one_member_validated_on_every_val_row(tmp_path, isolated_env):
    data = write_shapes(tmp_path / "shapes")
    cfg = member_config(tmp_path / "member.yaml", data, name="ddp", epochs=2)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
               "-m", "scripts.train", "--config", str(cfg), "train.augment.mode=batched"]
    proc = subprocess.run(command, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("registered ddp") == 1  # rank 1 stays silent

    (entry,) = Registry(isolated_env / "registry.yaml").members()
    run_dirs = list(isolated_env.glob("runs/*/*"))
    assert run_dirs == [isolated_env / entry.run] and "_incomplete" not in run_dirs[0].name
    log = (run_dirs[0] / "train.log").read_text()
    assert "distributed: 2 processes, backend gloo" in log
    assert "on each of 2 ranks" in log

    split = pd.read_csv(isolated_env / "splits" / "shapes-s0.csv", dtype={"id": str})
    val_ids = split.loc[split["fold"] == 0, "id"].tolist()
    probs = np.load(run_dirs[0] / "val_probs.npz")
    assert sorted(probs["ids"].tolist()) == sorted(val_ids)  # the full validation set, not rank 0's half
    assert len(pd.read_csv(run_dirs[0] / "history.csv")) == 2
