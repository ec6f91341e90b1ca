"""Voting rules: agreement with sklearn's VotingClassifier, tie rule, order-independence."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import VotingClassifier
from sklearn.preprocessing import LabelEncoder

from ensemble.voting import geometric_vote, hard_vote, logit_vote, soft_vote, vote_counts, vote_shares


class _StoredProbs(ClassifierMixin, BaseEstimator):
    """A 'fitted' classifier that answers from a stored table; X holds row indices."""

    def __init__(self, table: np.ndarray | None = None) -> None:
        self.table = table

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.table[np.asarray(X)[:, 0].astype(int)]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


def sklearn_vote(probs: np.ndarray, voting: str, weights=None) -> np.ndarray:
    """VotingClassifier's own prediction for stored member probabilities, without training."""
    n_members, n_rows, n_classes = probs.shape
    estimators = [_StoredProbs(p) for p in probs]
    clf = VotingClassifier([(f"m{i}", e) for i, e in enumerate(estimators)], voting=voting, weights=weights)
    clf.estimators_ = estimators
    clf.le_ = LabelEncoder().fit(np.arange(n_classes))
    clf.classes_ = clf.le_.classes_
    return clf.predict(np.arange(n_rows)[:, None])


def random_probs(rng: np.random.Generator, n_members: int, n_rows: int, n_classes: int) -> np.ndarray:
    return rng.dirichlet(np.full(n_classes, 0.7), size=(n_members, n_rows))


def random_weights(rng: np.random.Generator, n_members: int, kind: str):
    if kind == "none":
        return None
    if kind == "int":  # integer weights make exact ties common
        w = rng.integers(0, 4, n_members).astype(float)
        w[rng.integers(n_members)] = 1.0 + w.max()  # never all zero
        return w
    return rng.uniform(0.05, 2.0, n_members)


@pytest.mark.parametrize("kind", ["none", "int", "float"])
def test_hard_vote_matches_voting_classifier(kind: str) -> None:
    rng = np.random.default_rng(0)
    n_ties = 0
    for _ in range(40):
        n_members, n_classes = int(rng.integers(1, 7)), int(rng.integers(2, 6))
        probs = random_probs(rng, n_members, 40, n_classes)
        weights = random_weights(rng, n_members, kind)
        expected = sklearn_vote(probs, "hard", weights)
        np.testing.assert_array_equal(hard_vote(probs, weights), expected)
        counts = vote_counts(probs, weights)
        top = counts.max(axis=1, keepdims=True)
        n_ties += int(((counts == top).sum(axis=1) > 1).sum())
    if kind != "float":
        assert n_ties > 50  # the comparison really exercised the tie rule


@pytest.mark.parametrize("kind", ["none", "int", "float"])
def test_soft_vote_matches_voting_classifier(kind: str) -> None:
    rng = np.random.default_rng(1)
    for _ in range(40):
        n_members, n_classes = int(rng.integers(1, 7)), int(rng.integers(2, 6))
        probs = random_probs(rng, n_members, 40, n_classes)
        weights = random_weights(rng, n_members, kind)
        labels, mean = soft_vote(probs, weights)
        np.testing.assert_array_equal(labels, sklearn_vote(probs, "soft", weights))
        np.testing.assert_allclose(mean, np.average(probs, axis=0, weights=weights), rtol=0, atol=1e-15)


def test_deliberate_ties_go_to_lowest_class_like_sklearn() -> None:
    # Two members with equal weight disagreeing: 1-1 tie -> lowest class.
    a = np.array([[0.1, 0.0, 0.9], [0.0, 0.8, 0.2]])
    b = np.array([[0.0, 0.7, 0.3], [0.6, 0.0, 0.4]])
    probs = np.stack([a, b])
    np.testing.assert_array_equal(hard_vote(probs), [1, 0])
    np.testing.assert_array_equal(hard_vote(probs), sklearn_vote(probs, "hard"))
    # Integer weights 2 vs 1+1: class 2 (weight 2) ties classes voted by two weight-1 members.
    c = np.array([[0.0, 0.9, 0.1], [0.9, 0.1, 0.0]])
    probs3 = np.stack([a, b, c])
    weights = [2, 1, 1]
    np.testing.assert_array_equal(hard_vote(probs3, weights), sklearn_vote(probs3, "hard", weights))
    np.testing.assert_array_equal(hard_vote(probs3, weights), [1, 0])
    # Exact soft tie: mean of (0.75, 0.25) and (0.25, 0.75) is (0.5, 0.5).
    tie = np.array([[[0.75, 0.25]], [[0.25, 0.75]]])
    assert soft_vote(tie)[0][0] == 0
    assert sklearn_vote(tie, "soft")[0] == 0
    # A tie inside one member's probabilities: its vote goes to the lower class.
    inner = np.array([[[0.2, 0.4, 0.4]]])
    assert hard_vote(inner)[0] == 1


def test_votes_are_counts_not_maxima() -> None:
    probs = np.array(
        [
            [[0.9, 0.1, 0.0]],
            [[0.3, 0.7, 0.0]],
            [[0.3, 0.7, 0.0]],
        ]
    )
    assert probs.max(axis=0).argmax() == 0  # what a "max of probabilities" rule would say
    assert hard_vote(probs)[0] == 1
    np.testing.assert_array_equal(vote_counts(probs)[0], [1.0, 2.0, 0.0])


def test_soft_averages_probabilities_not_logits() -> None:
    probs = np.array([[[0.001, 0.999]], [[0.9, 0.1]], [[0.9, 0.1]]])
    labels, mean = soft_vote(probs)
    np.testing.assert_allclose(mean[0], [1.801 / 3, 1.199 / 3])
    assert labels[0] == 0
    # Averaging log-probabilities (or logits) would pick the other class here.
    assert geometric_vote(probs)[0][0] == 1
    assert logit_vote(probs)[0][0] == 1


def test_geometric_is_normalised_weighted_product() -> None:
    rng = np.random.default_rng(2)
    probs = random_probs(rng, 4, 30, 5) + 1e-3
    probs /= probs.sum(axis=2, keepdims=True)
    weights = np.array([0.5, 1.0, 2.0, 0.25])
    product = np.prod(probs ** (weights / weights.sum())[:, None, None], axis=0)
    expected = product / product.sum(axis=1, keepdims=True)
    labels, pooled = geometric_vote(probs, weights)
    np.testing.assert_allclose(pooled, expected, rtol=1e-10)
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))
    # With probability inputs, logits are log p up to a row constant: same pool.
    np.testing.assert_array_equal(logit_vote(probs, weights)[1], pooled)


def test_results_do_not_depend_on_member_order() -> None:
    rng = np.random.default_rng(3)
    probs = random_probs(rng, 4, 200, 4)
    probs[3] = probs[1]  # identical members must not confuse the canonical order
    for weights in (None, np.array([0.1, 0.2, 0.3, 0.2]), np.array([1.0, 2.0, 2.0, 1.0])):
        reference = None
        for perm in itertools.permutations(range(4)):
            perm = list(perm)
            w = None if weights is None else weights[perm]
            p = probs[perm]
            got = (hard_vote(p, w), vote_shares(p, w), *soft_vote(p, w), *geometric_vote(p, w))
            if reference is None:
                reference = got
            for mine, ref in zip(got, reference):
                np.testing.assert_array_equal(mine, ref)  # bit-for-bit, not approximately


def test_order_independence_is_bitwise_where_naive_sums_are_not() -> None:
    rng = np.random.default_rng(1)
    probs = random_probs(rng, 3, 50, 4)
    weights = np.array([0.1, 0.2, 0.3])
    naive, ours = set(), set()
    for perm in itertools.permutations(range(3)):
        perm = list(perm)
        naive.add(np.average(probs[perm], axis=0, weights=weights[perm]).tobytes())
        ours.add(soft_vote(probs[perm], weights[perm])[1].tobytes())
    assert len(naive) > 1  # float sums do depend on order here...
    assert len(ours) == 1  # ...but ours do not


def test_class_nobody_predicts_keeps_its_column() -> None:
    rng = np.random.default_rng(4)
    probs = random_probs(rng, 3, 20, 4)
    probs[:, :, 3] = 0.0
    probs /= probs.sum(axis=2, keepdims=True)
    assert vote_counts(probs).shape == (20, 4)
    np.testing.assert_array_equal(vote_counts(probs)[:, 3], 0.0)
    for rule in (soft_vote, geometric_vote, logit_vote):
        labels, table = rule(probs)
        assert table.shape == (20, 4)
        np.testing.assert_allclose(table.sum(axis=1), 1.0)
        assert (labels < 3).all()
    np.testing.assert_allclose(vote_shares(probs).sum(axis=1), 1.0)


def test_weights_scale_free_and_zero_weight_ignored() -> None:
    rng = np.random.default_rng(5)
    probs = random_probs(rng, 3, 100, 3)
    np.testing.assert_array_equal(hard_vote(probs, [1, 2, 0]), hard_vote(probs[:2], [1, 2]))
    np.testing.assert_allclose(soft_vote(probs, [1, 2, 0])[1], soft_vote(probs[:2], [3, 6])[1], rtol=1e-14)


@pytest.mark.parametrize(
    "probs, weights, message",
    [
        (np.ones((4, 3)) / 3, None, "shape"),
        (np.ones((2, 4, 3)) / 3, [1.0], "one value per member"),
        (np.ones((2, 4, 3)) / 3, [1.0, -0.5], "non-negative"),
        (np.ones((2, 4, 3)) / 3, [0.0, 0.0], "all be zero"),
        (np.ones((2, 4, 3)) / 3, [np.nan, 1.0], "finite"),
        (np.full((2, 4, 3), np.nan), None, "NaN"),
        (np.ones((0, 4, 3)), None, "empty"),
    ],
)
def test_invalid_inputs_raise_value_error(probs, weights, message) -> None:
    for rule in (hard_vote, soft_vote, geometric_vote, logit_vote):
        with pytest.raises(ValueError, match=message):
            rule(probs, weights)
