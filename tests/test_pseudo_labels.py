"""Fold-safe pseudo-labels: the rule, the set on disk, training on it, and the refusals.

The end-to-end part trains 2 architectures x 2 folds of digits at 16 px for 1 epoch, votes them as
fold groups, pseudo-labels the test images from that recipe, and trains students on the set.
"""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from ensemble import pseudo
from ensemble.recipe import Recipe, apply
from helpers import REPO, run_script, train_in_process
from members.losses import build_loss
from members.pseudo_loss import PseudoLabelLoss, pack_pseudo_targets

TINY = ["data.image_size=[16,16]", "train.epochs=1", "train.batch_size=128", "data.split.name=digits-k2",
        "data.split.n_folds=2"]
ARCHS = {"a": "resnet10t", "b": "test_resnet"}
CFG = str(REPO / "configs" / "digits" / "resnet18.yaml")
SET = {"name": "pl", "split": {"name": "s", "sha256": "f" * 64}, "folds": {0: {"a-f0": 0, "b-f0": 0},
                                                                          1: {"a-f1": 1, "b-f1": 1}}}


# --- the rule and the selection, on arrays -------------------------------------------------------------

def test_fold_groups_serve_every_fold_from_that_fold_model_only():
    units = {"a*": {"a-f0": 0, "a-f1": 1, "a-f2": 2}, "b*": {"b-f1": 1, "b-f0": 0, "b-f2": 2}}
    assert pseudo.fold_teachers(units, {}) == {0: {"a*": "a-f0", "b*": "b-f0"}, 1: {"a*": "a-f1", "b*": "b-f1"},
                                               2: {"a*": "a-f2", "b*": "b-f2"}}
    # holdout members serve only the fold they were validated on
    assert pseudo.fold_teachers({"m": {"m": 3}, "n": {"n": 3}}, {}) == {3: {"m": "m", "n": "n"}}
    assert pseudo.fold_teachers({"m": {"m": 0}, "n": {"n": 1}}, {}) == {}


def test_a_student_is_refused_a_teacher_that_saw_its_fold_or_another_split():
    split = SET["split"]
    assert pseudo.fold_problem("s-f1", split, 1, SET) is None
    leaky = {**SET, "folds": {0: SET["folds"][0], 1: {"a-f0": 0, "b-f1": 1}}}
    problem = pseudo.fold_problem("s-f1", split, 1, leaky)
    assert "'s-f1'" in problem and "fold 1" in problem and "'a-f0'" in problem
    holdout = {**SET, "folds": {0: {"m": 0}}}
    problem = pseudo.fold_problem("s-f1", split, 1, holdout)
    assert "'s-f1'" in problem and "fold 1" in problem and "trained on that fold" in problem
    problem = pseudo.fold_problem("s-f1", {"name": "other", "sha256": "e" * 64}, 1, SET)
    assert "'s-f1'" in problem and "'other'" in problem


def test_threshold_and_cap_select_the_most_confident_rows():
    probs = np.array([[0.95, 0.05], [0.91, 0.09], [0.5, 0.5], [0.2, 0.8], [0.97, 0.03]])
    assert pseudo.select(probs, 0.9).tolist() == [True, True, False, False, True]
    assert pseudo.select(probs, 0.8).tolist() == [True, True, False, True, True]
    # at most 0.4 x 5 = 2 rows per class: class 0 keeps its two most confident
    assert pseudo.select(probs, 0.8, cap=0.4).tolist() == [True, False, False, True, True]
    calib = pseudo.calibration(probs, np.array([0, 1, 0, 1, 0]), 0.9)
    assert calib["above"] == 3 and calib["accuracy_above"] == pytest.approx(2 / 3)
    for bad in (0, 0.0, -0.1, 1.5, float("nan")):
        assert "(0, 1]" in pseudo.threshold_problem(bad)
    assert pseudo.threshold_problem(1.0) is None


def test_the_pseudo_loss_is_the_usual_loss_at_weight_one_and_scales_pseudo_rows():
    class Cfg:
        loss, label_smoothing, focal_gamma = "ce", 0.0, 2.0

    torch.manual_seed(0)
    logits, labels = torch.randn(6, 3), np.array([0, 1, 2, 0, 1, 2])
    flag = np.array([0, 0, 0, 1, 1, 0], bool)
    packed = torch.from_numpy(pack_pseudo_targets(labels, flag, np.full((6, 3), 1 / 3)))
    plain = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels))
    assert torch.allclose(PseudoLabelLoss(build_loss(Cfg, None), 1.0)(logits, packed), plain)
    real = torch.nn.functional.cross_entropy(logits[~flag], torch.from_numpy(labels[~flag]))
    fake = torch.nn.functional.cross_entropy(logits[flag], torch.from_numpy(labels[flag]))
    half = PseudoLabelLoss(build_loss(Cfg, None), 0.5)(logits, packed)
    assert torch.allclose(half, (4 * real + 0.5 * 2 * fake) / 6)


# --- end to end through the scripts ------------------------------------------------------------------

@pytest.fixture(scope="module")
def folds(tmp_path_factory, digits_root):
    """The fold teachers trained in this process (the checks read what they wrote), then the vote and the
    pseudo-label set through the user's commands."""
    out = tmp_path_factory.mktemp("pseudo")
    env = {"VOTE_OUTPUT_ROOT": str(out), "VOTE_DATA_ROOT": str(digits_root.parent), "TQDM_DISABLE": "1",
           "WANDB_MODE": "disabled", "VOTE_LOCAL_CONFIG": str(out / "none.yaml"), "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    for prefix, arch in ARCHS.items():
        for k in range(2):
            train_in_process("--config", CFG, f"name={prefix}-f{k}", f"model.arch={arch}", f"data.split.fold={k}",
                             *TINY, env=env)
    run_script("vote", "--groups", "a-f", "b-f", "--rule", "soft", "--name", "teach", env=env)
    # a threshold the 1-epoch teachers reach on some test images: the rule, not the accuracy, is under test
    proc = run_script("pseudo", "--recipe", str(out / "submissions" / "teach.recipe.yaml"), "--name", "pl",
                      "--threshold", "0.12", env=env)
    return out, env, proc


def _registry(out) -> dict:
    return {e["name"]: e for e in yaml.safe_load((out / "registry.yaml").read_text())["members"]}


def _cached(out, member: str, split: str) -> np.ndarray:
    with np.load(out / "cache" / "predictions" / member / f"{split}.npz") as data:
        return data["probs"]


@pytest.mark.slow
def test_fold_k_targets_are_exactly_the_recipe_on_the_fold_k_models(folds):
    out, _, proc = folds
    assert "fold 0 learns from: a-f0, b-f0" in proc.stdout and "fold 1 learns from: a-f1, b-f1" in proc.stdout
    assert "teacher on held-out validation rows" in proc.stdout
    recipe = Recipe.from_yaml(out / "submissions" / "teach.recipe.yaml")
    record = yaml.safe_load((out / "pseudo" / "pl" / "pseudo.yaml").read_text())
    assert record["folds"] == {0: {"a-f0": 0, "b-f0": 0}, 1: {"a-f1": 1, "b-f1": 1}}
    assert record["threshold"] == 0.12 and len(record["recipe_sha256"]) == 64
    with np.load(out / "pseudo" / "pl" / "teacher.npz") as data:
        stored, passing = data["probs"], data["passing"]
    for k in (0, 1):
        _, expected = apply(recipe, {"a-f*": _cached(out, f"a-f{k}", "test"), "b-f*": _cached(out, f"b-f{k}", "test")})
        expected = np.asarray(expected) / np.asarray(expected).sum(1, keepdims=True)
        np.testing.assert_array_equal(stored[k], expected.astype(np.float32))
        assert (passing[k] == (stored[k].max(1) >= 0.12)).all()
    table = pd.read_csv(out / "pseudo" / "pl" / "labels.csv", dtype={"ImageID": str})
    assert list(table.columns[:3]) == ["ImageID", "class", "confidence"] and "fold1_pass" in table
    assert passing[1].sum() > 0, "the fixture's threshold must let some test images pass"


@pytest.mark.slow
def test_students_train_on_pseudo_rows_but_are_scored_on_real_rows_only(folds):
    out, env, _ = folds
    for k, extra in ((0, ["data.pseudo=pl"]), (1, ["distill.unlabeled=pl", "pseudo.weight=0.5"])):
        proc = run_script("train", "--config", CFG, f"name=s-f{k}", "model.arch=resnet10t", f"data.split.fold={k}",
                          *TINY, *extra, env=env)
        assert f"fold {k}'s teacher" in proc.stderr
    entries, split = _registry(out), pd.read_csv(out / "splits" / "digits-k2.csv", dtype={"id": str})
    assert entries["s-f1"]["pseudo"]["mode"] == "soft" and entries["s-f0"]["pseudo"]["mode"] == "hard"
    for k in (0, 1):
        p = entries[f"s-f{k}"]["pseudo"]
        assert p["name"] == "pl" and p["threshold"] == 0.12 and p["rows"] > 0 and p["fold"] == k
        with np.load(out / entries[f"s-f{k}"]["val_probs"]) as data:
            assert sorted(data["ids"].tolist()) == sorted(split.loc[split["fold"] == k, "id"])
    run_script("oof", "--prefix", "s-f", "--out", str(out / "s.npz"), env=env)
    with np.load(out / "s.npz") as data:
        assert sorted(data["ids"].tolist()) == sorted(split["id"]) and not any(i.startswith("pseudo:") for i in data["ids"])
    run_script("vote", "--groups", "s-f", "a-f", "--rule", "soft", "--compare", "--name", "with-s", env=env)
    report = (out / "reports" / "with-s" / "report.md").read_text()
    assert "(pseudo: pl)" in report and "teach.recipe.yaml" in report
    metrics = yaml.safe_load((out / "reports" / "with-s" / "metrics.json").read_text())
    assert metrics["n_val_rows"] == len(split)


@pytest.mark.slow
def test_a_resumed_pseudo_labelled_run_is_bit_identical(folds):
    out, env, _ = folds
    args = ["--config", CFG, "model.arch=resnet10t", "data.split.fold=0", "data.pseudo=pl", *TINY,
            "train.epochs=2", "train.deterministic=true", "train.augment.mode=batched"]
    train_in_process(*args, "name=straight", env=env)
    train_in_process(*args, "name=paused", "--stop-after-epoch", "1", env=env)
    paused = next((out / "runs").glob("*/*_paused_*_incomplete"))
    assert yaml.safe_load((paused / "pseudo.yaml").read_text())["name"] == "pl"
    train_in_process("--resume", str(paused), env=env)
    entries = _registry(out)
    for name in ("best.safetensors", "last.safetensors"):
        a, b = (load_file(str(out / entries[n]["run"] / name)) for n in ("straight", "paused"))
        assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def _one_line(proc) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error:")
    return lines[-1]


@pytest.mark.slow
def test_bad_inputs_are_one_line_each(folds, tmp_path, digits_root):
    out, env, _ = folds
    # The train commands run with torch and timm unimportable: each mistake is found before the training stack loads.
    early = dict(env, PYTHONPATH=f"{REPO / 'tests' / 'blockers'}:{REPO}")
    recipe = str(out / "submissions" / "teach.recipe.yaml")
    for bad in ("0", "1.5", "-1"):
        line = _one_line(run_script("pseudo", "--recipe", recipe, "--name", "x", "--threshold", bad, env=env,
                                    check=False))
        assert "--threshold" in line and "(0, 1]" in line
    assert not (out / "pseudo" / "x").exists()
    line = _one_line(run_script("train", "--config", CFG, "name=u", "data.pseudo=nope", *TINY, env=early, check=False))
    assert "'nope'" in line and "scripts.pseudo" in line
    # holdout members serve only their own fold: a set from a-f0 teaches fold 0; a fold-1 student is refused
    run_script("vote", "--members", "a-f0", "b-f0", "--name", "h", env=env)
    proc = run_script("pseudo", "--recipe", str(out / "submissions" / "h.recipe.yaml"), "--name", "h", "--threshold",
                      "0.12", env=env)
    assert "fold 0 learns from: a-f0, b-f0" in proc.stdout and "fold 1 learns" not in proc.stdout
    line = _one_line(run_script("train", "--config", CFG, "name=t", "data.split.fold=1", "data.pseudo=h", *TINY,
                                env=early, check=False))
    assert "'t'" in line and "fold 1" in line and "trained on that fold" in line
    # a set whose record claims, for fold 1, a teacher that trained on fold 1's rows
    shutil.copytree(out / "pseudo" / "pl", out / "pseudo" / "leak")
    record = yaml.safe_load((out / "pseudo" / "leak" / "pseudo.yaml").read_text())
    record["folds"][1] = {"a-f0": 0, "b-f1": 1}  # fold 1 claims a teacher that trained on fold 1's rows
    (out / "pseudo" / "leak" / "pseudo.yaml").write_text(yaml.safe_dump(record))
    line = _one_line(run_script("train", "--config", CFG, "name=v", "data.split.fold=1", "data.pseudo=leak", *TINY,
                                env=early, check=False))
    assert "'v'" in line and "fold 1" in line and "'a-f0'" in line
    # a student whose classes differ from the set's (three digit classes as an image folder)
    folder = tmp_path / "three"
    for c in ("0", "1", "2"):
        (folder / c).mkdir(parents=True)
        for png in sorted((digits_root / "train" / c).glob("*.png"))[:12]:
            shutil.copy(png, folder / c / png.name)
    line = _one_line(run_script("train", "--config", CFG, "name=w", "data.source=folder", f"data.root={folder}",
                                f"data.test={digits_root / 'test' / 'info.csv'}", "data.pseudo=pl",
                                "data.duplicates=off", *TINY, "data.split.name=three-k2", env=early, check=False))
    assert "'pl'" in line and "classes" in line and "'w'" in line
    assert not {"t", "u", "v", "w"} & set(_registry(out))
