"""Stacking: logistic regression on log-probabilities, kept as plain numbers, cross-fitted in compare."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from scipy.special import softmax

from ensemble.compare import compare
from ensemble.recipe import Recipe
from ensemble.recipe import apply as apply_recipe
from ensemble.stacking import C_GRID, fit_stacker, stacker_scores


def members(rng, n_rows=400, n_classes=4):
    """`good` knows the label but is badly under-confident; `loud` is confident noise."""
    y = rng.integers(0, n_classes, n_rows)
    z = rng.normal(size=(n_rows, n_classes))
    z[np.arange(n_rows), y] += 2.5
    good = softmax(z / 8.0, axis=1)
    loud = softmax(rng.normal(scale=4.0, size=(n_rows, n_classes)), axis=1)
    return {"good": good, "loud": loud}, y


def test_stacking_learns_to_ignore_a_loud_member_honestly() -> None:
    probs, y = members(np.random.default_rng(0))
    table = compare(probs, y, 4, n_boot=200).table.set_index("method")
    assert table.loc["stack", "f1_macro_honest"] > table.loc["soft", "f1_macro_honest"] + 0.15
    assert table.loc["stack", "f1_macro_val"] >= table.loc["stack", "f1_macro_honest"]


def test_parameters_are_plain_numbers_and_round_trip_exactly(tmp_path) -> None:
    probs, y = members(np.random.default_rng(1))
    params = fit_stacker(np.stack([probs["good"], probs["loud"]]), y, ["good", "loud"])
    assert params["C"] in C_GRID and params["members"] == ["good", "loud"]
    text = yaml.safe_dump(params)
    assert "!!python" not in text  # nothing a safe loader would refuse: no pickled objects
    recipe = Recipe("stack", {"good": 1.0, "loud": 1.0}, stack=params)
    again = Recipe.from_yaml(recipe.to_yaml(tmp_path / "stack.yaml"))
    assert again.stack == recipe.stack
    shuffled = {"loud": probs["loud"], "good": probs["good"]}
    for got, want in zip(apply_recipe(again, shuffled), apply_recipe(recipe, probs)):
        assert np.array_equal(got, want)  # bit for bit, whatever the member order


def test_a_class_absent_from_training_is_never_predicted() -> None:
    rng = np.random.default_rng(2)
    probs, y = members(rng, n_rows=200)
    keep = y != 3
    params = fit_stacker(np.stack([probs["good"][keep], probs["loud"][keep]]), y[keep], ["good", "loud"], 4)
    labels, p = stacker_scores(params, np.stack([probs["good"], probs["loud"]]))
    assert np.isfinite(params["intercept"]).all() and len(params["coef"]) == 4
    assert not (labels == 3).any() and np.allclose(p.sum(1), 1)


def test_bad_stack_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="stack"):
        Recipe("stack", {"a": 1.0, "b": 1.0}, stack={"coef": [[0.0, 1.0, 2.0]], "intercept": [0.0]})
    with pytest.raises(ValueError, match="stack"):
        Recipe("soft", {"a": 1.0}, stack={"coef": [[0.0]], "intercept": [0.0]})
