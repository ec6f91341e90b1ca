"""Temperature scaling, Caruana selection and simplex weights."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import softmax
from sklearn.metrics import f1_score, log_loss

from ensemble.calibration import (
    apply_temperature,
    apply_temperatures,
    fit_temperature,
    fit_temperatures,
    temperature_nll,
)
from ensemble.selection import caruana_selection, fit_simplex_weights


def overconfident_member(rng: np.random.Generator, n_rows: int, n_classes: int, sharpen: float):
    """Labels drawn from softmax(z); the member reports softmax(sharpen * z), so T = sharpen is ideal."""
    z = rng.normal(scale=1.5, size=(n_rows, n_classes))
    true_p = softmax(z, axis=1)
    y = np.array([rng.choice(n_classes, p=p) for p in true_p])
    return softmax(sharpen * z, axis=1), y


def test_temperature_recovers_overconfidence_and_lowers_nll() -> None:
    rng = np.random.default_rng(0)
    probs, y = overconfident_member(rng, 4000, 5, sharpen=3.0)
    t = fit_temperature(probs, y)
    assert 2.6 < t < 3.4
    calibrated = apply_temperature(probs, t)
    before = log_loss(y, probs, labels=range(5))
    after = log_loss(y, calibrated, labels=range(5))
    assert after < before - 0.1
    np.testing.assert_array_equal(calibrated.argmax(axis=1), probs.argmax(axis=1))
    # It is the minimiser of the (float64) NLL, not just an improvement.
    log_p = np.log(probs)
    at_t = temperature_nll(log_p, y, t)
    assert at_t <= temperature_nll(log_p, y, t * 1.05)
    assert at_t <= temperature_nll(log_p, y, t / 1.05)
    assert at_t == pytest.approx(after, rel=1e-9)


def test_temperature_sharpens_an_underconfident_member() -> None:
    rng = np.random.default_rng(1)
    probs, y = overconfident_member(rng, 4000, 4, sharpen=0.5)
    assert 0.4 < fit_temperature(probs, y) < 0.6


def test_apply_temperature_one_is_identity_and_works_on_stacks() -> None:
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(6), size=(3, 50))
    np.testing.assert_allclose(apply_temperature(probs, 1.0), probs, atol=1e-10)
    scaled = apply_temperatures(probs, ["a", "b", "c"], {"b": 2.0})
    np.testing.assert_array_equal(scaled[0], probs[0])
    np.testing.assert_allclose(scaled[1], apply_temperature(probs[1], 2.0))
    with pytest.raises(ValueError):
        apply_temperature(probs, 0.0)


def test_fit_temperatures_keyed_by_name() -> None:
    rng = np.random.default_rng(3)
    hot, y = overconfident_member(rng, 2000, 4, sharpen=2.5)
    cold = softmax(0.5 * np.log(hot), axis=1)
    temps = fit_temperatures(np.stack([cold, hot]), y, ["cold", "hot"])
    assert 2.0 < temps["hot"] < 3.0
    # `cold` is `hot` already softened by 2, so it needs half the temperature.
    assert temps["cold"] == pytest.approx(temps["hot"] / 2, rel=2e-3)


def naive_caruana(probs, y, names, n_iterations, init_best_n=0, metric="f1"):
    """Textbook greedy selection with replacement using sklearn's metrics, no shortcuts."""
    order = np.argsort(names)
    n_classes = probs.shape[2]
    chosen: list[int] = []

    def score(members):
        if metric == "f1":
            # argmax of the sum (= of the mean, without a division that could round two sums together)
            total = np.add.reduce(probs[members], axis=0)
            return f1_score(y, total.argmax(axis=1), average="macro", labels=range(n_classes), zero_division=0)
        mean = probs[members].mean(axis=0)
        return -log_loss(y, np.clip(mean, 1e-12, None), labels=range(n_classes))

    if init_best_n:
        singles = [score([m]) for m in order]
        chosen += [int(order[i]) for i in np.argsort(-np.array(singles), kind="stable")[:init_best_n]]
    for _ in range(n_iterations):
        scores = [score(chosen + [int(m)]) for m in order]
        chosen.append(int(order[int(np.argmax(scores))]))
    counts = np.bincount(chosen, minlength=len(names))
    return {names[i]: counts[i] / counts.sum() for i in order if counts[i]}


def noisy_members(rng, n_members=6, n_rows=300, n_classes=5):
    y = rng.integers(0, n_classes, n_rows)
    shared = rng.normal(size=(n_rows, n_classes))
    members = []
    for i in range(n_members):
        z = 0.8 * shared + rng.normal(size=(n_rows, n_classes))
        z[np.arange(n_rows), y] += 0.6 + 0.3 * i
        members.append(softmax(z * (0.6 + 0.4 * i), axis=1))
    return np.stack(members), y


@pytest.mark.parametrize("metric, init_best_n", [("f1", 0), ("f1", 2), ("nll", 0)])
def test_caruana_equals_textbook_greedy(metric: str, init_best_n: int) -> None:
    rng = np.random.default_rng(4)
    probs, y = noisy_members(rng)
    names = ["f", "b", "e", "a", "d", "c"]  # not sorted, to exercise name-order tie-breaks
    got = caruana_selection(probs, y, names, metric=metric, n_iterations=15, init_best_n=init_best_n)
    expected = naive_caruana(probs, y, names, 15, init_best_n, metric)
    assert got.keys() == expected.keys()
    for name in got:
        assert got[name] == pytest.approx(expected[name])


def test_caruana_equals_textbook_greedy_on_tied_coarse_probabilities() -> None:
    # Probabilities in quarters make exact ties between classes and candidates common.
    rng = np.random.default_rng(11)
    for _ in range(12):
        n_classes, n_members = int(rng.integers(2, 6)), int(rng.integers(2, 6))
        probs = np.round(rng.dirichlet(np.ones(n_classes), size=(n_members, 40)) * 4) / 4
        probs[probs.sum(axis=2) == 0] = 1.0 / n_classes
        probs /= probs.sum(axis=2, keepdims=True)
        y = rng.integers(0, n_classes, 40)
        names = [f"n{i}" for i in rng.permutation(n_members)]
        for init_best_n in (0, 2):
            got = caruana_selection(probs, y, names, n_iterations=10, init_best_n=init_best_n)
            expected = naive_caruana(probs, y, names, 10, init_best_n)
            assert got.keys() == expected.keys()
            assert all(got[k] == pytest.approx(expected[k]) for k in got)


def test_caruana_weights_on_simplex_and_order_free() -> None:
    rng = np.random.default_rng(5)
    probs, y = noisy_members(rng, n_rows=400)
    names = [f"m{i}" for i in range(len(probs))]
    perm = rng.permutation(len(names))
    for kwargs in ({}, {"bagging": True, "n_bags": 5, "bag_fraction": 0.5, "seed": 3}):
        w = caruana_selection(probs, y, names, n_iterations=20, **kwargs)
        assert sum(w.values()) == pytest.approx(1.0)
        assert all(v > 0 for v in w.values()) and set(w) <= set(names)
        w_perm = caruana_selection(probs[perm], y, [names[i] for i in perm], n_iterations=20, **kwargs)
        assert w_perm == w


def test_caruana_bagging_is_seeded_and_uses_subsets() -> None:
    rng = np.random.default_rng(6)
    probs, y = noisy_members(rng)
    names = [f"m{i}" for i in range(len(probs))]
    one = caruana_selection(probs, y, names, n_iterations=5, bagging=True, n_bags=1, bag_fraction=0.5, seed=1)
    assert len(one) <= 3  # a single bag only ever sees half the members
    a = caruana_selection(probs, y, names, n_iterations=10, bagging=True, n_bags=4, seed=7)
    assert a == caruana_selection(probs, y, names, n_iterations=10, bagging=True, n_bags=4, seed=7)


def test_simplex_weights_are_the_constrained_nll_optimum() -> None:
    rng = np.random.default_rng(7)
    probs, y = noisy_members(rng, n_rows=500)
    names = [f"m{i}" for i in range(len(probs))]
    w = fit_simplex_weights(probs, y, names)
    weights = np.array([w[n] for n in names])
    assert (weights >= 0).all() and weights.sum() == pytest.approx(1.0, abs=1e-12)

    def nll(v):
        return log_loss(y, np.tensordot(v, probs, axes=1), labels=range(probs.shape[2]))

    # An independent solver on the explicit simplex constraints reaches the same NLL.
    reference = minimize(
        nll,
        np.full(len(names), 1 / len(names)),
        method="SLSQP",
        bounds=[(0, 1)] * len(names),
        constraints=[{"type": "eq", "fun": lambda v: v.sum() - 1}],
    )
    assert nll(weights) <= reference.fun + 1e-5
    assert nll(weights) < nll(np.full(len(names), 1 / len(names)))
    perm = rng.permutation(len(names))
    w_perm = fit_simplex_weights(probs[perm], y, [names[i] for i in perm])
    assert w_perm == w


def test_selection_rejects_bad_input() -> None:
    probs = np.full((2, 4, 3), 1 / 3)
    with pytest.raises(ValueError, match="names"):
        caruana_selection(probs, [0, 1, 2, 0], ["a"])
    with pytest.raises(ValueError, match="unique"):
        fit_simplex_weights(probs, [0, 1, 2, 0], ["a", "a"])
    with pytest.raises(ValueError, match="out of range"):
        caruana_selection(probs, [0, 1, 3, 0], ["a", "b"])
    with pytest.raises(ValueError, match="metric"):
        caruana_selection(probs, [0, 1, 2, 0], ["a", "b"], metric="auc")
