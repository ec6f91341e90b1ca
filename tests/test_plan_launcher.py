"""Plans on real Ray: members as Ray tasks, each a real `scripts.train` process on the digits PNGs at 16 px.

One Ray session per module (≈5 s to start) with 2 CPUs and 2 *logical* GPUs: Ray hands each task its own
CUDA_VISIBLE_DEVICES while the members still train on the CPU. Tiny timm test models, 1 epoch.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from core.registry import Registry
from core.settings import load_settings
from jobs.plan import PlanRequest, plan_status, run_plan, vote_plan
from launch.state import PlanFolder, read_state
from predict import cache

ray = pytest.importorskip("ray")
REPO = Path(__file__).resolve().parent.parent
BASE = REPO / "configs" / "digits" / "resnet18.yaml"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def digits(digits_root, monkeypatch):
    monkeypatch.setenv("VOTE_DATA_ROOT", str(digits_root.parent))
    return digits_root


def write_plan(folder: Path, name: str, units: list[dict], folds="all", **extra) -> Path:
    plan = {"name": name, "base": str(BASE),
            "overrides": ["data.image_size=[16,16]", "train.epochs=1", "data.duplicates=exact", "train.batch_size=128"],
            "split": {"name": "digits-2fold", "n_folds": 2}, "folds": folds, "seeds": [0], "units": units,
            "vote": {"rule": "soft"}, "resources": {"cpus": 1, "gpus": 1, "threads": 1}, **extra}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan), encoding="utf-8")
    return path


TWO_UNITS = [{"prefix": "t-res-f", "arch": "test_resnet"}, {"prefix": "t-eff-f", "arch": "test_efficientnet"}]
MEMBERS = ["t-res-f0", "t-res-f1", "t-eff-f0", "t-eff-f1"]


def overlap(a: dict, b: dict) -> bool:
    return a["started"] < b["finished"] and b["started"] < a["finished"]


def test_a_plan_trains_its_members_two_at_a_time_votes_them_and_a_rerun_trains_nothing(ray_session, digits, tmp_path):
    plan = write_plan(tmp_path, "cv", TWO_UNITS)
    settings = load_settings()
    result = run_plan(PlanRequest(str(plan)), settings)
    assert result.missing == [] and sorted(result.launched.finished) == sorted(MEMBERS)
    assert sorted(e.name for e in Registry(settings.registry).members()) == sorted(MEMBERS)

    states = [read_state(PlanFolder.of(settings.output_root, "cv"), m) for m in MEMBERS]
    assert {s["device"] for s in states} <= {"gpu 0", "gpu 1"}
    # each member's own process filled its val and test predictions (scripts.train --predict), before the vote
    assert all(cache.cache_path(settings.predictions, m, part).is_file() for m in MEMBERS for part in cache.PARTS)
    assert "registered t-res-f0" in PlanFolder.of(settings.output_root, "cv").log("t-res-f0").read_text()
    pairs = [(a, b) for i, a in enumerate(states) for b in states[i + 1:] if overlap(a, b)]
    assert pairs, "two slots, four members: some ran at the same time"
    assert all(a["device"] != b["device"] for a, b in pairs)  # members running together never share a GPU

    status = plan_status(PlanRequest(str(plan)), settings).text
    assert all(m in status for m in MEMBERS) and status.count("done") == 4

    voted = vote_plan(PlanRequest(str(plan)), settings)
    assert voted.recipe.groups == {"t-res-f*": ["t-res-f0", "t-res-f1"], "t-eff-f*": ["t-eff-f0", "t-eff-f1"]}
    assert voted.submission.is_file()

    again = run_plan(PlanRequest(str(plan)), settings)
    assert sorted(again.skipped) == sorted(MEMBERS) and again.launched.finished == {}


def test_a_bad_override_fails_at_validation_before_any_task(digits, tmp_path, capsys):
    from scripts.plan import main

    units = [TWO_UNITS[0], {"prefix": "t-bad-f", "arch": "test_resnet", "overrides": ["train.lrr=0.1"]}]
    plan = write_plan(tmp_path, "typo", units)
    assert main(["run", str(plan)]) == 2
    err = capsys.readouterr().err
    assert "unit 't-bad-f'" in err and "lrr" in err and len(err.strip().splitlines()) == 1
    assert not (load_settings().output_root / "plan-state").exists()  # nothing was started or written


def test_several_seeds_name_members_with_their_seed(digits, tmp_path):
    from launch.plan_file import load_plan

    plan = write_plan(tmp_path, "seeds", TWO_UNITS[:1], folds=[1], seeds=[0, 3])
    loaded = load_plan(plan)
    assert [m.name for m in loaded.members] == ["t-res-f1-s0", "t-res-f1-s3"]
    assert [m.config["train"]["seed"] for m in loaded.members] == [0, 3]
    assert loaded.members[0].config_hash != loaded.members[1].config_hash


def test_a_member_that_crashes_is_reported_while_the_others_finish(ray_session, digits, tmp_path, capsys):
    from scripts.plan import main

    # test_vit3 insists on 160 px inputs: it builds, then fails on its first training batch (epoch 1).
    units = [{"prefix": "ok-f", "arch": "test_resnet"}, {"prefix": "vit-f", "arch": "test_vit3"}]
    plan = write_plan(tmp_path, "crash", units, folds=[0])
    assert main(["run", str(plan)]) == 1
    out = capsys.readouterr().out
    assert "vit-f0: FAILED after 2 attempt(s)" in out and "AssertionError" in out
    assert f"missing: vit-f0; fix the cause and rerun: python -m scripts.plan run {plan}" in out
    log = PlanFolder.of(load_settings().output_root, "crash").log("vit-f0")
    assert f"(log: {log})" in out and "Input height (16)" in log.read_text()
    registry = Registry(load_settings().registry)
    assert registry.exists("ok-f0") and not registry.exists("vit-f0")


def test_a_driver_killed_after_its_first_member_reruns_only_the_missing_ones(ray_session, digits, tmp_path):
    plan = write_plan(tmp_path, "killed", TWO_UNITS)
    settings = load_settings()
    registry = Registry(settings.registry)
    driver = subprocess.Popen([sys.executable, "-m", "scripts.plan", "run", str(plan), "--address", ray_session],
                              cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (registry.path.exists() and registry.members()):  # the first member has registered
        assert driver.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = {e.name for e in registry.members()}
    assert 0 < len(before) < 4

    result = run_plan(PlanRequest(str(plan)), settings)
    assert set(result.skipped) == before
    assert set(result.launched.finished) == set(MEMBERS) - before
    assert sorted(e.name for e in registry.members()) == sorted(MEMBERS)
    assert plan_status(PlanRequest(str(plan)), settings).text.count("running") == 0  # a member the dead driver left 'running' is not


def test_sigterm_stops_the_members_cleanly_and_the_next_run_resumes_them(ray_session, digits, tmp_path):
    plan = write_plan(tmp_path, "stopped", TWO_UNITS[:1])
    text = yaml.safe_load(plan.read_text())
    # Enough epochs (and no early stop) that SIGTERM lands mid-training even on a quiet box, where one epoch
    # of this tiny member takes about half a second: CI once saw both members finish 6 epochs first.
    text["overrides"][1] = "train.epochs=30"
    text["overrides"].append("early_stopping.patience=30")
    plan.write_text(yaml.safe_dump(text))
    settings = load_settings()
    runs = settings.output_root / "runs"
    driver = subprocess.Popen([sys.executable, "-m", "scripts.plan", "run", str(plan), "--address", ray_session],
                              cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not list(runs.glob("*/*_incomplete/last_state.json")):  # a member finished its first epoch
        assert driver.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    signalled = time.time()
    driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == 130 and "stopped: each running member was sent SIGTERM" in err
    folder = PlanFolder.of(settings.output_root, "stopped")
    stopped = [m for m in ("t-res-f0", "t-res-f1") if read_state(folder, m)["state"] == "stopped"]
    states = {m: read_state(folder, m) for m in ("t-res-f0", "t-res-f1")}
    assert stopped, ({m: (s["state"], s["started"] - signalled, s["finished"] - signalled) for m, s in states.items()},
                     err[-3000:])  # the member in epoch 2 saved `last` and registered nothing
    assert not any(Registry(settings.registry).exists(m) for m in stopped)

    result = run_plan(PlanRequest(str(plan)), settings)
    assert result.missing == []
    assert any(result.launched.finished[m]["action"] == "resumed" for m in stopped)
