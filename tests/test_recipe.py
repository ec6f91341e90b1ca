"""Recipes: YAML round trip, exact regeneration, refusal of missing members, the best honest recipe."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from ensemble.calibration import apply_temperature
from ensemble.compare import compare, pick_best
from ensemble.composite import CompositeSpec
from ensemble.metrics import macro_f1
from ensemble.recipe import Recipe
from ensemble.recipe import apply as apply_recipe
from ensemble.voting import hard_vote, soft_vote

MASK = {"tasks": [{"name": "mask", "size": 3}, {"name": "gender", "size": 2}, {"name": "age", "size": 3}]}



def compare_rules(*args, **kwargs):
    """The comparison's table (ensemble.compare returns the table with its recipes and predictions)."""
    return compare(*args, **kwargs).table

def members(rng, n_rows=400, n_classes=6, n_members=3):
    y = rng.integers(0, n_classes, n_rows)
    shared = rng.normal(size=(n_rows, n_classes))
    out = {}
    for i in range(n_members):
        z = shared + rng.normal(size=(n_rows, n_classes))
        z[np.arange(n_rows), y] += 1.2 + 0.3 * i
        out[f"net{i}"] = softmax(z * (1.0 + 0.7 * i), axis=1)
    return out, y


def test_yaml_round_trip_regenerates_identical_predictions(tmp_path) -> None:
    probs, _ = members(np.random.default_rng(0))
    recipe = Recipe(
        rule="soft",
        members={"net0": 0.1, "net2": 0.30000000000000004},
        temperatures={"net0": 1.7320508075688772, "net2": 0.9},
        note="weights from caruana",
    )
    path = recipe.to_yaml(tmp_path / "recipe.yaml")
    loaded = Recipe.from_yaml(path)
    assert loaded == recipe
    labels, table = apply_recipe(recipe, probs)
    labels2, table2 = apply_recipe(loaded, probs)
    np.testing.assert_array_equal(labels, labels2)
    np.testing.assert_array_equal(table, table2)
    # And it is what the recipe says: temperature-scaled, weighted soft vote of net0 and net2.
    scaled = np.stack([apply_temperature(probs["net0"], 1.7320508075688772), apply_temperature(probs["net2"], 0.9)])
    np.testing.assert_array_equal(labels, soft_vote(scaled, [0.1, 0.30000000000000004])[0])


def test_writer_callback_is_used(tmp_path) -> None:
    written = {}
    Recipe("hard", {"a": 1.0}).to_yaml(tmp_path / "r.yaml", write_text=lambda p, text: written.update({p: text}))
    assert list(written) == [tmp_path / "r.yaml"] and "rule: hard" in written[tmp_path / "r.yaml"]
    assert not (tmp_path / "r.yaml").exists()


def test_apply_refuses_missing_member_and_ignores_extras() -> None:
    probs, _ = members(np.random.default_rng(1))
    recipe = Recipe("hard", {"net1": 1.0, "ghost": 1.0})
    with pytest.raises(ValueError, match="ghost"):
        apply_recipe(recipe, probs)
    only = Recipe("hard", {"net0": 2.0, "net1": 1.0, "net2": 1.0})
    shuffled = {k: probs[k] for k in ["net2", "net0", "net1"]}
    labels, shares = apply_recipe(only, {**shuffled, "unused": probs["net0"]})
    np.testing.assert_array_equal(labels, hard_vote(np.stack([probs["net0"], probs["net1"], probs["net2"]]), [2, 1, 1]))
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)


def test_per_task_recipe_round_trip(tmp_path) -> None:
    probs, _ = members(np.random.default_rng(2), n_classes=18)
    recipe = Recipe("per_task_hard", {"net0": 1.0, "net1": 1.0, "net2": 1.0}, composite=MASK)
    loaded = Recipe.from_yaml(recipe.to_yaml(tmp_path / "r.yaml"))
    spec = CompositeSpec.from_dict(MASK)
    stacked = np.stack([probs[k] for k in sorted(probs)])
    np.testing.assert_array_equal(apply_recipe(loaded, probs)[0], spec.per_task_vote(stacked, rule="hard"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rule": "median", "members": {"a": 1.0}},
        {"rule": "soft", "members": {}},
        {"rule": "soft", "members": {"a": -1.0}},
        {"rule": "soft", "members": {"a": 0.0}},
        {"rule": "soft", "members": {"a": 1.0}, "temperatures": {"a": 0.0}},
        {"rule": "per_task_soft", "members": {"a": 1.0}},
        {"rule": "soft", "members": {"a": 1.0}, "composite": MASK},
    ],
)
def test_invalid_recipes_rejected(kwargs) -> None:
    with pytest.raises(ValueError):
        Recipe(**kwargs)


def test_pick_best_reproduces_its_in_sample_score(tmp_path) -> None:
    probs, y = members(np.random.default_rng(3), n_rows=500)
    table = compare_rules(probs, y, 6, n_boot=100).set_index("method")
    recipe = pick_best(compare(probs, y, 6, n_boot=100))
    method = recipe.note.split(":")[0]
    assert method in table.index and not method.startswith("member:")
    eligible = table[table["kind"] != "member"]
    assert table.loc[method, "f1_macro_honest"] == eligible["f1_macro_honest"].max()
    labels, _ = apply_recipe(Recipe.from_yaml(recipe.to_yaml(tmp_path / "best.yaml")), probs)
    assert macro_f1(y, labels, range(6)) == pytest.approx(table.loc[method, "f1_macro_val"], abs=0)


def test_compare_with_composite_adds_per_task_rows() -> None:
    probs, y = members(np.random.default_rng(4), n_rows=300, n_classes=18)
    table = compare_rules(probs, y, 18, composite=MASK, n_boot=50)
    assert {"per_task_hard", "per_task_soft"} <= set(table["method"])
    with pytest.raises(ValueError, match="classes"):
        compare_rules(probs, y, 18, composite={"tasks": [{"name": "a", "size": 4}]})
