"""Composite labels (mask competition layout: class = mask*6 + gender*3 + age)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from ensemble.composite import CompositeSpec
from ensemble.voting import hard_vote, soft_vote

MASK = {"tasks": [{"name": "mask", "size": 3}, {"name": "gender", "size": 2}, {"name": "age", "size": 3}]}


def onehot_member(classes: list[int], n_classes: int = 18, confidence: float = 0.9) -> np.ndarray:
    probs = np.full((len(classes), n_classes), (1 - confidence) / (n_classes - 1))
    probs[np.arange(len(classes)), classes] = confidence
    return probs


def test_round_trip_all_18_classes_with_competition_formula() -> None:
    spec = CompositeSpec.from_dict(MASK)
    assert spec.n_classes == 18 and spec.names == ["mask", "gender", "age"]
    flat = np.arange(18)
    tasks = spec.decode(flat)
    expected = np.array([(m, g, a) for m, g, a in itertools.product(range(3), range(2), range(3))])
    np.testing.assert_array_equal(tasks, expected)
    np.testing.assert_array_equal(tasks[:, 0] * 6 + tasks[:, 1] * 3 + tasks[:, 2], flat)
    np.testing.assert_array_equal(spec.encode(tasks), flat)
    assert CompositeSpec.from_dict(spec.to_dict()) == spec


def test_bad_specs_and_labels_are_rejected() -> None:
    spec = CompositeSpec.from_dict(MASK)
    with pytest.raises(ValueError):
        CompositeSpec.from_dict({"tasks": [{"name": "mask"}]})
    with pytest.raises(ValueError):
        CompositeSpec((("a", 2), ("a", 3)))
    with pytest.raises(ValueError):
        CompositeSpec((("a", 0),))
    with pytest.raises(ValueError):
        spec.decode(np.array([18]))
    with pytest.raises(ValueError):
        spec.encode(np.array([[0, 2, 0]]))
    with pytest.raises(ValueError, match="classes"):
        spec.per_task_vote(np.full((2, 3, 10), 0.1))


def test_task_probs_are_marginals() -> None:
    spec = CompositeSpec.from_dict(MASK)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(18), size=(2, 5))
    mask, gender, age = spec.task_probs(probs)
    digits = spec.decode(np.arange(18))
    for t, marginal in enumerate((mask, gender, age)):
        for value in range(marginal.shape[-1]):
            np.testing.assert_allclose(marginal[..., value], probs[..., digits[:, t] == value].sum(axis=-1))
        np.testing.assert_allclose(marginal.sum(axis=-1), 1.0)


def test_per_task_hard_vote_handcrafted_and_differs_from_flat() -> None:
    spec = CompositeSpec.from_dict(MASK)
    # Three members, three different flat classes: (0,0,0), (0,1,1), (1,1,0).
    classes = [spec.encode(np.array([t]))[0] for t in [(0, 0, 0), (0, 1, 1), (1, 1, 0)]]
    probs = np.stack([onehot_member([c]) for c in classes])
    assert hard_vote(probs)[0] == 0  # 1-1-1 tie -> lowest flat class
    # Per task: mask 0 (2:1), gender 1 (2:1), age 0 (2:1) -> (0, 1, 0) = class 3.
    assert spec.per_task_vote(probs, rule="hard")[0] == 3
    # Weights count per task: a heavy third member wins every task it votes in.
    assert spec.per_task_vote(probs, weights=[1, 1, 3], rule="hard")[0] == spec.encode(np.array([[1, 1, 0]]))[0]


def test_per_task_soft_vote_uses_marginals() -> None:
    spec = CompositeSpec((("a", 2), ("b", 2)))  # classes: 0=(0,0) 1=(0,1) 2=(1,0) 3=(1,1)
    probs = np.array([[[0.4, 0.0, 0.3, 0.3]]])
    # Flat argmax is class 0, but the marginals say a=1 (0.6) and b=0 (0.7): class 2.
    assert soft_vote(probs)[0][0] == 0
    labels, table = spec.per_task_vote_with_probs(probs, rule="soft")
    assert labels[0] == 2
    np.testing.assert_allclose(table[0], [0.4 * 0.7, 0.4 * 0.3, 0.6 * 0.7, 0.6 * 0.3])


def test_per_task_vote_table_is_consistent_and_order_free() -> None:
    spec = CompositeSpec.from_dict(MASK)
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(18, 0.3), size=(4, 200))
    weights = np.array([1.0, 2.0, 0.5, 1.0])
    perm = [2, 0, 3, 1]
    for rule in ("hard", "soft"):
        labels, table = spec.per_task_vote_with_probs(probs, weights, rule)
        np.testing.assert_allclose(table.sum(axis=1), 1.0)
        np.testing.assert_array_equal(labels, spec.per_task_vote(probs, weights, rule))
        np.testing.assert_array_equal(labels, spec.per_task_vote(probs[perm], weights[perm], rule))
        assert (table[np.arange(200), labels] >= table.max(axis=1) * (1 - 1e-12)).all()
    with pytest.raises(ValueError, match="rule"):
        spec.per_task_vote(probs, rule="median")
