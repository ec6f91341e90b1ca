"""Task members (data.task): trained on one task of the mask data's composite label, voted beside
18-class members task by task. Hand computations on small arrays, refusals in one line, and the
whole path on a generated mask layout (people with 7 photos each)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

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
