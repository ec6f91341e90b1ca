"""A vote, a report, --compare and pseudo-labels over cached members run with torch, timm and torchvision unimportable;
every script's --help imports none of the heavy stacks."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from core.registry import Registry
from helpers import REPO, run_script
from predict.run import predict_members
from predict_fixture import MEMBERS, members_template, project_copy

NAMES = [name for name, *_ in MEMBERS]
BLOCKERS = Path(__file__).resolve().parent / "blockers"
pytestmark = pytest.mark.slow


@pytest.fixture
def cached_project(tmp_path, tmp_path_factory, digits_root):
    """The prediction-test members with every val and test prediction already in the cache."""
    settings, env = project_copy(members_template(tmp_path_factory.getbasetemp(), digits_root), tmp_path / "proj",
                                 digits_root)
    predict_members(NAMES, Registry(settings.registry), settings)
    return settings, dict(env, PYTHONPATH=f"{BLOCKERS}:{REPO}")


def test_the_blocker_really_blocks(cached_project):
    _, env = cached_project
    proc = run_script("predict", "--members", *NAMES, "--force", env=env, check=False)
    assert proc.returncode != 0
    assert "blocked by tests/blockers: torch" in proc.stderr


def test_vote_with_compare_over_cached_members_needs_no_torch(cached_project):
    settings, env = cached_project
    proc = run_script("vote", "--members", *NAMES, "--rule", "best", "--compare", "--name", "nogpu", env=env)
    assert "honest" in proc.stdout.lower()
    assert (settings.output_root / "submissions" / "nogpu.csv").is_file()
    assert (settings.output_root / "reports" / "nogpu" / "report.html").is_file()


def test_pseudo_labels_from_cached_members_need_no_torch(cached_project):
    """Pseudo-labelling reads the prediction cache only, so it starts in a second, not after torch and timm."""
    settings, env = cached_project
    run_script("vote", "--members", *NAMES, "--rule", "soft", "--name", "teach", env=env)
    recipe = settings.output_root / "submissions" / "teach.recipe.yaml"
    proc = run_script("pseudo", "--recipe", str(recipe), "--name", "nogpu", "--threshold", "0.05", env=env)
    assert "learns from" in proc.stdout
    assert (settings.output_root / "pseudo" / "nogpu" / "labels.csv").is_file()


def test_a_config_typo_is_refused_before_the_training_stack_loads():
    """The most common mistake, a misspelt key, is one line in about a second: torch is never imported."""
    proc = run_script("train", "--config", str(REPO / "configs" / "digits" / "resnet18.yaml"), "train.lrr=0.1",
                      env={"PYTHONPATH": f"{BLOCKERS}:{REPO}"}, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "'train.lrr'" in proc.stderr and "blocked" not in proc.stderr


def test_report_over_cached_members_needs_no_torch(cached_project):
    settings, env = cached_project
    run_script("report", "--members", *NAMES, "--rule", "soft", "--name", "nogpu-report", env=env)
    assert (settings.output_root / "reports" / "nogpu-report" / "report.html").is_file()


SCRIPTS = sorted(path.stem for path in (REPO / "scripts").glob("*.py") if path.stem != "__init__")
# The stacks a --help must not import: each costs from a few tenths of a second (pandas) to seconds (torch, ray).
HEAVY = {"torch", "timm", "torchvision", "sklearn", "scipy", "pandas", "matplotlib", "wandb", "ray", "cleanlab"}
# Lists a --help reads from the registries that own them, still complete without importing their stacks.
LISTED = {"train": "train.loss: ce, focal, soft_f1", "check_data": "digits | folder | csv | mask",
          "vote": "stack+f1w", "report": "per_task_soft"}


def imported_packages(importtime_log: str) -> set[str]:
    """Top-level packages named by `python -X importtime` lines (`import time: self | cumulative | name`)."""
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in importtime_log.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_needs_no_gpu_stack(script):
    """Every script's --help answers without torch (blocked outright) and without any heavy stack: the
    parser is built from argparse, core and jobs.choices, and the job is imported after parsing."""
    proc = run_script(script, "--help", env={"PYTHONPATH": f"{BLOCKERS}:{REPO}", "PYTHONPROFILEIMPORTTIME": "1"})
    assert "usage: python -m scripts." in proc.stdout
    assert LISTED.get(script, "") in " ".join(proc.stdout.split())
    imported = imported_packages(proc.stderr)
    assert "argparse" in imported  # the log was read: a --help always imports argparse
    assert sorted(imported & HEAVY) == []



def test_training_and_prediction_load_timm_without_wandb_yet_a_run_can_still_log_to_it():
    """timm imports wandb on the side (about 3 s of every member's start); ours keeps it out until tracking asks."""
    code = ("import sys, jobs.train, jobs.predict; print('timm' in sys.modules, 'wandb' in sys.modules); "
            "import members.tracking, wandb; print(callable(wandb.init))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False", "True"]


def test_a_data_listing_that_fails_is_refused_before_the_training_stack_loads(tmp_path, digits_root):
    """A CSV naming an image that is not there, or a pseudo-label set never made, is one line found without torch
    (jobs/train_checks.py)."""
    listing = tmp_path / "train.csv"
    listing.write_text("path,label\nthere.png,0\nghost.png,1\n", encoding="utf-8")
    Image.new("RGB", (8, 8)).save(tmp_path / "there.png")
    proc = run_script("train", "--config", str(REPO / "configs" / "digits" / "resnet18.yaml"), "data.source=csv",
                      f"data.root={listing}", env={"PYTHONPATH": f"{BLOCKERS}:{REPO}",
                                                   "VOTE_OUTPUT_ROOT": str(tmp_path / "out")}, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"{listing} row 3" in proc.stderr and "ghost.png" in proc.stderr and "blocked" not in proc.stderr
    assert not (tmp_path / "out" / "runs").exists()
    # a pseudo-label set that was never made: also before torch
    proc = run_script("train", "--config", str(REPO / "configs" / "digits" / "resnet18.yaml"), "data.pseudo=nope",
                      env={"PYTHONPATH": f"{BLOCKERS}:{REPO}", "VOTE_OUTPUT_ROOT": str(tmp_path / "out"),
                           "VOTE_DATA_ROOT": str(digits_root.parent)}, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "'nope'" in proc.stderr and "scripts.pseudo" in proc.stderr and "blocked" not in proc.stderr
