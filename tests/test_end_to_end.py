"""The whole path on the embedded digits data, through the real scripts a user runs."""
from __future__ import annotations

import pandas as pd
import pytest
import yaml

from core.registry import Registry
from helpers import REPO, run_script, train_in_process

TINY = ["data.image_size=[16,16]", "train.epochs=2", "train.batch_size=128"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_root):
    """Two small members trained once for the module, in their own output root, on the session's digits data
    (in this process: what they write is checked below; the other commands run as a user runs them)."""
    out = tmp_path_factory.mktemp("e2e")
    env = {"VOTE_OUTPUT_ROOT": str(out), "VOTE_DATA_ROOT": str(digits_root.parent), "TQDM_DISABLE": "1",
           "WANDB_MODE": "disabled", "VOTE_LOCAL_CONFIG": str(out / "none.yaml")}
    cfg = str(REPO / "configs" / "digits" / "resnet18.yaml")
    train_in_process("--config", cfg, "name=a", "model.arch=resnet10t", *TINY, env=env)
    train_in_process("--config", cfg, "name=b", "model.arch=resnet10t", "train.seed=3", *TINY, env=env)
    return out, env


def test_members_are_registered_with_their_contract(trained):
    out, _ = trained
    entries = Registry(out / "registry.yaml").members()
    assert [e.name for e in entries] == ["a", "b"]
    for entry in entries:
        weights = out / entry.weights
        assert weights.is_file() and not entry.weights.startswith("/")
        run_dir = weights.parent
        assert run_dir.name.startswith(tuple("0123456789")) and "_incomplete" not in run_dir.name
        for name in ("config.yaml", "train.log", "curves.png", "confusion.png", "val_probs.npz", "last.safetensors"):
            assert (run_dir / name).is_file(), name
        assert entry.split.name == "digits-holdout-s42" and len(entry.split.sha256) == 64
        assert entry.classes == [str(i) for i in range(10)]
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert saved["name"] == entry.name and saved["data"]["image_size"] == [16, 16]


def test_registry_list_shows_members(trained):
    _, env = trained
    listing = run_script("registry", "list", env=env).stdout
    assert "a" in listing.split() and "b" in listing.split() and "resnet10t" in listing


def test_vote_writes_a_valid_submission_and_report(trained, digits_root):
    out, env = trained
    proc = run_script("vote", "--members", "a", "b", "--weights", "b=2", "--rule", "hard", "--name", "t", env=env)
    assert "vote:hard" in proc.stdout and "vote:soft" in proc.stdout
    submission = pd.read_csv(out / "submissions" / "t.csv", dtype={"ImageID": str})
    info = pd.read_csv(digits_root / "test" / "info.csv", dtype={"ImageID": str})
    assert list(submission.columns) == ["ImageID", "ans"]
    assert submission["ImageID"].tolist() == info["ImageID"].tolist()
    assert submission["ans"].between(0, 9).all()
    assert (out / "reports" / "t" / "report.md").is_file()
    # a second vote reuses the prediction cache and refuses to overwrite without --overwrite
    again = run_script("vote", "--members", "a", "b", "--name", "t", env=env, check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert "cached" in again.stderr


def test_vote_refuses_an_unregistered_member(trained):
    _, env = trained
    proc = run_script("vote", "--members", "a", "zzz", "--name", "u", env=env, check=False)
    assert proc.returncode == 2
    assert "member 'zzz' is not in" in proc.stderr and "Traceback" not in proc.stderr


def test_weights_name_an_unknown_member(trained):
    _, env = trained
    proc = run_script("vote", "--members", "a", "b", "--weights", "c=2", "--name", "w", env=env, check=False)
    assert proc.returncode == 2 and "'c'" in proc.stderr


def test_smoke_registers_nothing(trained):
    out, env = trained
    cfg = str(REPO / "configs" / "digits" / "resnet18.yaml")
    before = (out / "registry.yaml").read_text()
    proc = run_script("train", "--config", cfg, "--smoke", "name=smoke", "model.arch=resnet10t", *TINY, env=env)
    assert "smoke run OK" in proc.stdout
    assert (out / "registry.yaml").read_text() == before
    assert list((out / "runs" / "_smoke").rglob("best.safetensors"))


def test_smoke_catches_a_bad_config(trained):
    _, env = trained
    cfg = str(REPO / "configs" / "digits" / "resnet18.yaml")
    proc = run_script("train", "--config", cfg, "--smoke", "model.arch=resnet1800", env=env, check=False)
    assert proc.returncode == 2 and "unknown architecture 'resnet1800'" in proc.stderr


def test_compare_prints_honest_scores_and_a_verdict(trained):
    _, env = trained
    proc = run_script("vote", "--members", "a", "b", "--rule", "caruana", "--compare", "--name", "cmp", env=env)
    for method in ("best_member", "soft+temperature", "simplex", "caruana"):
        assert method in proc.stdout
    assert "best honest rule:" in proc.stdout and "interval" in proc.stdout
    assert "fitted on all" in proc.stdout  # the fitted recipe says how it was scored


def test_recipe_regenerates_the_same_submission(trained):
    out, env = trained
    run_script("vote", "--members", "a", "b", "--rule", "simplex", "--name", "r1", env=env)
    recipe = out / "submissions" / "r1.recipe.yaml"
    saved = yaml.safe_load(recipe.read_text())
    assert saved["rule"] == "soft" and set(saved["members"]) <= {"a", "b"}
    run_script("vote", "--recipe", str(recipe), "--name", "r2", env=env)
    assert (out / "submissions" / "r1.csv").read_bytes() == (out / "submissions" / "r2.csv").read_bytes()
