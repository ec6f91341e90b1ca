"""A vote, a report and --compare over cached members run with torch, timm and torchvision unimportable."""
from __future__ import annotations

from pathlib import Path

import pytest

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


def test_report_over_cached_members_needs_no_torch(cached_project):
    settings, env = cached_project
    run_script("report", "--members", *NAMES, "--rule", "soft", "--name", "nogpu-report", env=env)
    assert (settings.output_root / "reports" / "nogpu-report" / "report.html").is_file()


@pytest.mark.parametrize("script", ["vote", "report", "predict", "registry", "oof", "check_data"])
def test_help_needs_no_gpu_stack(script):
    proc = run_script(script, "--help", env={"PYTHONPATH": f"{BLOCKERS}:{REPO}"})
    assert "usage: python -m scripts." in proc.stdout
