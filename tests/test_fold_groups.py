"""Fold groups vote as units, end to end through the real scripts: 2 architectures x 3 folds of digits."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from helpers import REPO, run_script, train_in_process

TINY = ["data.image_size=[16,16]", "train.epochs=1", "train.batch_size=128",
        "data.split.name=digits-k3", "data.split.n_folds=3"]
ARCHS = {"a": "resnet10t", "b": "test_resnet"}


@pytest.fixture(scope="module")
def folds(tmp_path_factory, digits_root):
    """a-f0..a-f2 and b-f0..b-f2: two architectures, each trained once on every fold of one split (in this
    process: the checks read what training wrote; the votes below run as the user's commands)."""
    out = tmp_path_factory.mktemp("folds")
    env = {"VOTE_OUTPUT_ROOT": str(out), "VOTE_DATA_ROOT": str(digits_root.parent), "TQDM_DISABLE": "1",
           "WANDB_MODE": "disabled", "VOTE_LOCAL_CONFIG": str(out / "none.yaml"), "OMP_NUM_THREADS": "1"}
    cfg = str(REPO / "configs" / "digits" / "resnet18.yaml")
    for prefix, arch in ARCHS.items():
        for k in range(3):
            train_in_process("--config", cfg, f"name={prefix}-f{k}", f"model.arch={arch}", f"data.split.fold={k}",
                             *TINY, env=env)
    return out, env


def test_fold_groups_vote_on_out_of_fold_rows_and_regenerate_exactly(folds):
    out, env = folds
    proc = run_script("vote", "--members", "a-f*", "b-f*", "--rule", "stack+f1w", "--compare", "--name", "g",
                      env=env)
    for method in ("stack", "stack+f1w", "soft+f1w", "caruana+best"):
        assert method in proc.stdout
    recipe = yaml.safe_load((out / "submissions" / "g.recipe.yaml").read_text())
    assert recipe["rule"] == "stack" and set(recipe["members"]) == {"a-f*", "b-f*"}
    assert recipe["groups"] == {"a-f*": ["a-f0", "a-f1", "a-f2"], "b-f*": ["b-f0", "b-f1", "b-f2"]}
    assert "out-of-fold" in recipe["group_rule"] and "mean" in recipe["group_rule"]
    assert len(recipe["decision_weights"]) == 10
    coef = recipe["stack"]["coef"]
    assert len(coef) == 10 and len(coef[0]) == 2 * 10 and all(isinstance(v, float) for v in coef[0])

    metrics = json.loads((out / "reports" / "g" / "metrics.json").read_text())
    split = pd.read_csv(out / "splits" / "digits-k3.csv")
    assert metrics["n_val_rows"] == len(split)  # every training row, out of fold
    assert metrics["resampling"].startswith(("rows", "groups"))
    assert (out / "reports" / "g" / "selection_curve.png").is_file()

    run_script("vote", "--recipe", str(out / "submissions" / "g.recipe.yaml"), "--name", "g2", env=env)
    assert (out / "submissions" / "g.csv").read_bytes() == (out / "submissions" / "g2.csv").read_bytes()


def test_groups_prefix_is_the_same_unit_as_the_pattern(folds):
    out, env = folds
    run_script("vote", "--groups", "a-f", "b-f", "--rule", "soft+f1w", "--name", "p", env=env)
    recipe = yaml.safe_load((out / "submissions" / "p.recipe.yaml").read_text())
    assert set(recipe["groups"]) == {"a-f*", "b-f*"} and recipe["rule"] == "soft"
    assert len(recipe["decision_weights"]) == 10


def test_a_fold_group_and_a_holdout_member_are_refused_together(folds):
    out, env = folds
    proc = run_script("vote", "--members", "a-f*", "b-f0", "--name", "mix", env=env, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error:") and "a-f*" in line and "b-f0" in line and "out-of-fold" in line
    assert not (out / "submissions" / "mix.csv").exists()


def test_an_incomplete_fold_group_is_refused(folds):
    _, env = folds
    proc = run_script("vote", "--members", "a-f[01]", "b-f*", "--name", "inc", env=env, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "fold 2" in proc.stderr and "incomplete" in proc.stderr


def test_a_student_of_fold_groups_learns_honest_out_of_fold_targets(folds):
    """scripts.distill on a fold-group recipe: every target is out of fold, from the groups' cached val rows."""
    out, env = folds
    run_script("vote", "--groups", "a-f", "b-f", "--rule", "soft", "--name", "teach", env=env)
    recipe = out / "submissions" / "teach.recipe.yaml"
    cfg = str(REPO / "configs" / "digits" / "resnet18.yaml")
    proc = run_script("distill", "--recipe", str(recipe), "--config", cfg, "name=student", "model.arch=resnet10t",
                      *TINY, env=env)
    assert "registered student student" in proc.stdout
    assert "out of fold" in proc.stderr
    registry = yaml.safe_load((out / "registry.yaml").read_text())
    student = next(e for e in registry["members"] if e["name"] == "student")
    assert student["distilled_from"]["targets"] == "out-of-fold"
    assert student["distilled_from"]["members"] == ["a-f0", "a-f1", "a-f2", "b-f0", "b-f1", "b-f2"]
    # no second inference path: the fold models were never asked for a `train` split
    assert not list((out / "cache" / "predictions").glob("*/train.npz"))
