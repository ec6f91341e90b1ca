"""Task members (data.task): trained on one task of the mask data's composite label, voted beside
18-class members task by task. Hand computations on small arrays, refusals in one line, and the
whole path on a generated mask layout (people with 7 photos each)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml

from core.entry_refs import TaskRef
from core.errors import UserError
from ensemble.composite import CompositeSpec
from ensemble.task_vote import TaskRecipe, apply_tasks, fixed_recipe, task_distributions
from jobs.fold_groups import Unit
from jobs.task_vote import composite_of_units, parse_task_weights, task_of_units

SPEC = CompositeSpec.from_dict({"tasks": [{"name": "a", "size": 2}, {"name": "b", "size": 2}]})


def test_soft_task_vote_equals_a_hand_computation() -> None:
    # full member f: flat [0.1, 0.4, 0.3, 0.2] -> marginals a [0.5, 0.5], b [0.4, 0.6]; task member t (task a).
    probs = {"f": np.array([[0.1, 0.4, 0.3, 0.2], [0.4, 0.3, 0.2, 0.1]]), "t": np.array([[0.2, 0.8], [0.2, 0.8]])}
    recipe = fixed_recipe("soft", SPEC.to_dict(), {"t": "a"}, ["f", "t"])
    labels, table = apply_tasks(recipe, probs)
    # row 0: a = mean([.5,.5],[.2,.8]) = [.35,.65] -> 1; b = [.4,.6] -> 1; flat 1*2+1 = 3
    # row 1: a = mean([.7,.3],[.2,.8]) = [.45,.55] -> 1; b = [.6,.4] -> 0; flat 2
    np.testing.assert_array_equal(labels, [3, 2])
    np.testing.assert_allclose(table[0], [0.35 * 0.4, 0.35 * 0.6, 0.65 * 0.4, 0.65 * 0.6])
    # weight f:a=3 in row 1: a = (3*[.7,.3] + [.2,.8]) / 4 = [.575, .425] -> 0; flat 0
    weighted = fixed_recipe("soft", SPEC.to_dict(), {"t": "a"}, ["f", "t"], {"a": {"f": 3.0}})
    assert apply_tasks(weighted, probs)[0][1] == 0
    assert table.argmax(1).tolist() == labels.tolist()  # the product's argmax is the per-task argmax


def test_hard_task_vote_equals_a_hand_computation() -> None:
    probs = {"f": np.array([[0.4, 0.3, 0.2, 0.1]]), "g": np.array([[0.1, 0.1, 0.1, 0.7]]),
             "t": np.array([[0.2, 0.8]])}
    # a: f says 0, g says 1, t says 1 -> 1; b: f says 0, g says 1 -> tie -> lowest, 0; flat 2
    labels, shares = apply_tasks(fixed_recipe("hard", SPEC.to_dict(), {"t": "a"}, ["f", "g", "t"]), probs)
    assert labels.tolist() == [2]
    np.testing.assert_allclose(shares[0], [1 / 3 * 0.5, 1 / 3 * 0.5, 2 / 3 * 0.5, 2 / 3 * 0.5])


def test_uncovered_task_and_wrong_sizes_are_named() -> None:
    with pytest.raises(ValueError, match="task 'b' has no member"):
        task_distributions(SPEC, {"t": np.full((1, 2), 0.5)}, {"t": "a"})
    with pytest.raises(ValueError, match="has 3 classes but task 'a' has 2"):
        task_distributions(SPEC, {"t": np.full((1, 3), 1 / 3)}, {"t": "a"})


def test_task_recipe_round_trips_through_yaml() -> None:
    recipe = fixed_recipe("soft", SPEC.to_dict(), {"t": "a"}, ["f", "t"], {"a": {"t": 2.0}})
    again = TaskRecipe.from_dict(yaml.safe_load(yaml.safe_dump(recipe.to_dict(), sort_keys=False)))
    assert again.to_dict() == recipe.to_dict()
    assert again.members == {"f:a": 1.0, "t:a": 2.0, "f:b": 1.0}
    with pytest.raises(ValueError, match="named in the recipe of task 'b'"):
        TaskRecipe("soft", SPEC.to_dict(), {"t": "a"}, {"a": {"rule": "soft", "members": {"t": 1}},
                                                        "b": {"rule": "soft", "members": {"t": 1}}})


def test_weights_are_per_member_per_task_and_named() -> None:
    weights = parse_task_weights(["f=2", "t:a=3", "g:b=0.5"], ["f", "g", "t"], {"t": "a"}, SPEC)
    assert weights == {"a": {"f": 2.0, "t": 3.0}, "b": {"f": 2.0, "g": 0.5}}
    for bad, match in (("t:b=1", "does not cover task 'b'"), ("x=1", "not among the voting members"),
                       ("f", "must look like"), ("f=-1", "non-negative"), ("f:a=1 f:a=2", "given twice")):
        with pytest.raises(UserError, match=match) as err:
            parse_task_weights(bad.split(), ["f", "g", "t"], {"t": "a"}, SPEC)
        assert "\n" not in str(err.value)


# --- the whole path on a generated mask layout ------------------------------------------------

SPLIT = "mask-task-k2"


def _people():
    from tests.mask_fixture import Person

    ages = (22, 41, 67, 35, 19, 62, 50, 28)
    out = []
    for i in range(24):  # 24 people x 7 photos; every gender and age band many times
        gender = ("male", "female")[i % 2]
        age = ages[i % len(ages)]
        out.append(Person(f"{i:06d}", gender, "Asian", age, i % 2, 0 if age < 30 else 1 if age < 60 else 2))
    return out


def _train(root, name: str, *extra: str) -> dict:
    from core.config import load_config
    from core.settings import load_settings
    from jobs.train import train_member
    from tests.helpers import REPO

    overrides = [f"name={name}", "model.arch=resnet10t", "model.pretrained=false", f"data.root={root}",
                 "data.image_size=[32, 24]", "train.epochs=1", "train.batch_size=32", "train.num_workers=0",
                 "train.augment.color_jitter=0", f"data.split.name={SPLIT}", "data.split.n_folds=2",
                 "tracking.wandb.mode=disabled", *extra]
    config = load_config(str(REPO / "configs" / "mask" / "resnet18.yaml"), overrides)
    return train_member(config, load_settings())[1]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")
def test_task_members_train_register_and_vote_with_full_members(tmp_path, isolated_env) -> None:
    from core.settings import load_settings
    from jobs.vote import VoteRequest, vote
    from tests.mask_fixture import write_mask_layout

    fixture = write_mask_layout(tmp_path / "mask", _people())
    age = _train(fixture.root, "age-r10", "data.task=age")
    gender = _train(fixture.root, "gender-r10", "data.task=gender", "train.seed=1")
    full = [_train(fixture.root, f"full-r10-{s}", f"train.seed={s}") for s in (2, 3)]
    age, gender, full = age.to_dict(), gender.to_dict(), [e.to_dict() for e in full]  # the registry's mappings

    assert age["classes"] == ["lt30", "30to59", "60plus"] and gender["classes"] == ["male", "female"]
    assert age["task"] == {"name": "age", "of": full[0]["composite"]} and age["composite"] is None
    assert len({e["split"]["sha256"] for e in (age, gender, *full)}) == 1  # one split file for all
    split = pd.read_csv(isolated_env / "splits" / f"{SPLIT}.csv")
    assert split["label"].max() > 2  # made on the 18-class labels, whoever trained first

    settings = load_settings()
    names = ["age-r10", "gender-r10", "full-r10-2", "full-r10-3"]
    result = vote(VoteRequest(members=names, rule="soft", name="tasks", weights=["age-r10:age=2"]), settings)
    submission = pd.read_csv(result.submission, dtype={"ImageID": str})
    assert submission["ImageID"].tolist() == fixture.eval_ids and submission["ans"].between(0, 17).all()
    recipe = yaml.safe_load(result.recipe_path.read_text())
    assert recipe["task_members"] == {"age-r10": "age", "gender-r10": "gender"}
    assert recipe["tasks"]["age"]["members"] == {"age-r10": 2.0, "full-r10-2": 1.0, "full-r10-3": 1.0}
    report = result.report
    assert set(report.val_table["task"]) == {"mask", "gender", "age", "composed"}
    assert report.metrics["worst_task"] in ("mask", "gender", "age")
    assert (report.folder / f"confusion_task_{report.metrics['worst_task']}.png").is_file()
    assert "loses the most macro F1" in report.markdown.read_text()

    # The recipe regenerates the submission byte for byte.
    again = vote(VoteRequest(recipe=str(result.recipe_path), name="tasks-again"), settings)
    assert again.submission.read_bytes() == result.submission.read_bytes()

    # A fitted rule per task, cross-fitted on grouped folds.
    stacked = vote(VoteRequest(members=names, rule="stack", name="tasks-stack"), settings)
    assert set(yaml.safe_load(stacked.recipe_path.read_text())["tasks"]["age"]["stack"]["members"]) == {
        "age-r10", "full-r10-2", "full-r10-3"}
    assert "tasks:stack" in set(stacked.report.compare_table["method"])

    # Refusals, each one line, before any prediction work.
    from core.registry import Registry

    entries = {e.name: e for e in Registry(settings.registry).members()}
    units = [Unit(n, [n], False) for n in names]
    typed = entries["age-r10"]
    other_split = dict(entries, **{"age-r10": replace(typed, split=replace(typed.split, name="other"))})
    other_comp = dict(entries, **{"age-r10": replace(typed, task=TaskRef("age", {
        "tasks": [{"name": "age", "size": 3}, {"name": "gender", "size": 2}]}))})
    for bad, match in ((other_split, "split 'other'"), (other_comp, "belongs to composite")):
        with pytest.raises(UserError, match=match) as err:
            composite_of_units(units, bad)
        assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="task 'mask' has no member") as err:
        vote(VoteRequest(members=["age-r10", "gender-r10"], name="uncovered"), settings)
    # Fold groups of task members: one task per group.
    assert task_of_units([Unit("age-r10*", ["age-r10"], True)], entries) == {"age-r10*": "age"}
    with pytest.raises(UserError, match="mixes members of different tasks"):
        task_of_units([Unit("mix*", ["age-r10", "gender-r10"], True)], entries)


@pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")
def test_check_data_shows_per_task_counts_and_imbalance(tmp_path, isolated_env, capsys) -> None:
    from scripts.check_data import main
    from tests.helpers import REPO
    from tests.mask_fixture import write_mask_layout

    fixture = write_mask_layout(tmp_path / "mask", _people())
    rc = main(["--config", str(REPO / "configs" / "mask" / "resnet18.yaml"), f"data.root={fixture.root}",
               "data.task=age"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "18 classes" in out  # the split is previewed on the full composite label, as training makes it
    assert "Task age (this member's task): images per class" in out and "Task gender: images" in out
    # 24 people, ages cycling (22, 41, 67, 35, 19, 62, 50, 28): 9 lt30, 9 30to59, 6 60plus people, 7 photos each
    assert "task age imbalance: largest/smallest class = 1.50 (lt30: 63, 60plus: 42)" in out
    assert "task gender imbalance: largest/smallest class = 1.00" in out


def test_registry_entry_types_the_task_field() -> None:
    from core.entry import RegistryEntry

    base = {"name": "age-r10", "arch": "resnet10t", "classes": ["lt30", "30to59", "60plus"], "weights": "w.safetensors",
            "sha256": "0" * 64, "input": {"size": [32, 24], "mean": [0.5] * 3, "std": [0.5] * 3},
            "split": {"name": "s", "sha256": "1" * 64, "fold": 0}, "metrics": {}, "config": "c.yaml",
            "created": "2026-12-04T00:00:00Z"}
    task = {"name": "age", "of": SPEC.to_dict() | {"tasks": [{"name": "age", "size": 3}]}}
    entry = RegistryEntry.from_dict(base | {"task": task}, "entry 1")
    assert entry.task.name == "age" and entry.to_dict()["task"] == task and "task" not in entry.extra
    assert "task" not in RegistryEntry.from_dict(base, "entry 1").to_dict()  # additive: absent stays absent
    with pytest.raises(UserError, match="entry 1 \\('age-r10'\\) field 'task' names task 'mask'"):
        RegistryEntry.from_dict(base | {"task": {**task, "name": "mask"}}, "entry 1")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")
def test_task_members_form_fold_groups(tmp_path, isolated_env) -> None:
    from core.settings import load_settings
    from jobs.vote import VoteRequest, vote
    from tests.mask_fixture import write_mask_layout

    fixture = write_mask_layout(tmp_path / "mask", _people())
    for fold in (0, 1):
        _train(fixture.root, f"age-r10-f{fold}", "data.task=age", f"data.split.fold={fold}")
        _train(fixture.root, f"full-r10-f{fold}", f"data.split.fold={fold}", "train.seed=5")
    result = vote(VoteRequest(groups=["age-r10-f", "full-r10-f"], rule="soft", name="task-groups"), load_settings())
    recipe = yaml.safe_load(result.recipe_path.read_text())
    assert recipe["task_members"] == {"age-r10-f*": "age"}
    assert recipe["groups"] == {"age-r10-f*": ["age-r10-f0", "age-r10-f1"], "full-r10-f*": ["full-r10-f0", "full-r10-f1"]}
    assert result.report.metrics["n_val_rows"] == 24 * 7  # out-of-fold rows of every training image
    again = vote(VoteRequest(recipe=str(result.recipe_path), name="task-groups-again"), load_settings())
    assert again.submission.read_bytes() == result.submission.read_bytes()
