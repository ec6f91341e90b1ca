"""Cross-fitting, fast macro F1, the paired bootstrap and the honest comparison table."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax
from sklearn.metrics import f1_score

from ensemble.compare import compare
from ensemble.honest import (
    _resample_pattern_counts,
    best_member_method,
    crossfit_many,
    crossfit_predictions,
    make_folds,
    paired_bootstrap_gain,
)
from ensemble.metrics import macro_f1, macro_f1_many
from ensemble.selection import caruana_selection
from ensemble.voting import soft_vote


def compare_rules(*args, **kwargs):
    """The comparison's table (ensemble.compare returns the table with its recipes and predictions)."""
    return compare(*args, **kwargs).table

def sk_f1(y, pred, labels=None, sample_weight=None) -> float:
    return f1_score(y, pred, average="macro", labels=labels, zero_division=0, sample_weight=sample_weight)


def test_fast_macro_f1_equals_sklearn() -> None:
    rng = np.random.default_rng(0)
    for _ in range(60):
        n_classes = int(rng.integers(2, 8))
        n_rows = int(rng.integers(1, 60))
        y = rng.integers(0, n_classes, n_rows)
        pred = np.where(rng.random(n_rows) < 0.5, y, rng.integers(0, n_classes, n_rows))
        labels = [None, list(range(n_classes)), list(range(n_classes + 2)), [n_classes - 1, 0]][rng.integers(4)]
        weight = rng.integers(0, 4, n_rows) if rng.random() < 0.3 else None
        if weight is not None and weight.sum() == 0:
            weight[0] = 1
        assert macro_f1(y, pred, labels, weight) == pytest.approx(sk_f1(y, pred, labels, weight), abs=1e-12)


def test_macro_f1_many_equals_sklearn_row_by_row() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 6, 80)
    preds = rng.integers(0, 6, (7, 80))
    preds[0] = y
    expected = [sk_f1(y, p, labels=list(range(6))) for p in preds]
    np.testing.assert_allclose(macro_f1_many(y, preds, 6), expected, atol=1e-12)


def test_folds_stratify_and_fall_back_for_tiny_classes() -> None:
    y = np.repeat(np.arange(4), 25)
    for train, test in make_folds(y, 5, seed=0):
        np.testing.assert_array_equal(np.bincount(y[test]), [5, 5, 5, 5])
        assert np.intersect1d(train, test).size == 0
    tiny = np.concatenate([np.zeros(30, int), [1, 1]])  # class 1 has 2 rows < 5 folds
    folds = make_folds(tiny, 5, seed=0)
    assert len(folds) == 5
    np.testing.assert_array_equal(np.sort(np.concatenate([t for _, t in folds])), np.arange(32))
    with pytest.raises(ValueError):
        make_folds(np.zeros(3, int), 5)


def row_id_probs(n_rows: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Two members whose first one carries its row index in an unused corner, so a method can tell
    which rows it was given."""
    probs = rng.dirichlet(np.ones(n_classes), size=(2, n_rows))
    probs[0, :, 0] = 0.5 + np.arange(n_rows) / (4 * n_rows)  # unique per row
    return probs / probs.sum(axis=2, keepdims=True)


def test_crossfit_never_scores_rows_the_method_saw() -> None:
    rng = np.random.default_rng(2)
    n_rows = 120
    probs = row_id_probs(n_rows, 4, rng)
    lookup = {probs[0, i].tobytes(): i for i in range(n_rows)}
    y = rng.integers(0, 4, n_rows)
    seen: list[tuple[set[int], set[int]]] = []

    def instrumented(train_probs, train_y, names):
        trained_on = {lookup[row.tobytes()] for row in train_probs[0]}
        weights = caruana_selection(train_probs, train_y, names, n_iterations=5)
        record = (trained_on, set())
        seen.append(record)

        def predict(test_probs):
            record[1].update(lookup[row.tobytes()] for row in test_probs[0])
            return soft_vote(test_probs, [weights.get(n, 0.0) for n in names])[0]

        return predict

    labels = crossfit_predictions(instrumented, probs, y, ["a", "b"], n_splits=4, seed=0)
    assert len(seen) == 4
    for trained_on, scored in seen:
        assert trained_on.isdisjoint(scored)
        assert len(trained_on) + len(scored) == n_rows
    assert set().union(*(scored for _, scored in seen)) == set(range(n_rows))
    assert labels.shape == (n_rows,)


def test_crossfit_exposes_a_memorising_method() -> None:
    rng = np.random.default_rng(3)
    n_rows = 400
    probs = row_id_probs(n_rows, 4, rng)
    y = rng.integers(0, 4, n_rows)

    def memorise(train_probs, train_y, names):
        table = {row.tobytes(): label for row, label in zip(train_probs[0], train_y)}
        return lambda test_probs: np.array([table.get(row.tobytes(), 0) for row in test_probs[0]])

    in_sample = memorise(probs, y, ["a", "b"])(probs)
    assert (in_sample == y).all()
    honest = crossfit_predictions(memorise, probs, y, ["a", "b"], n_splits=5)
    assert (honest == y).mean() < 0.4  # it knows nothing about unseen rows


def test_best_member_is_chosen_on_training_rows() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 60)
    good = np.eye(3)[y] * 0.8 + 0.2 / 3
    bad = np.eye(3)[(y + 1) % 3] * 0.8 + 0.2 / 3
    probs = np.stack([bad, good])
    predict = best_member_method(probs, y, ["bad", "good"])
    np.testing.assert_array_equal(predict(probs), y)
    # Swapping the labels of the rows it sees makes "bad" the best on those rows.
    predict = best_member_method(probs, (y + 1) % 3, ["bad", "good"])
    np.testing.assert_array_equal(predict(probs), (y + 1) % 3)


def test_bootstrap_clear_win() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 5, 500)
    member = np.where(rng.random(500) < 0.6, y, rng.integers(0, 5, 500))
    ensemble = np.where(rng.random(500) < 0.9, y, rng.integers(0, 5, 500))
    out = paired_bootstrap_gain(y, ensemble, member, n_boot=500, seed=0, labels=range(5))
    assert out["gain"] == pytest.approx(sk_f1(y, ensemble, list(range(5))) - sk_f1(y, member, list(range(5))))
    assert out["low"] <= out["gain"] <= out["high"]
    assert out["gain"] > 0.1 and out["low"] > 0 and out["excludes_zero"] is True


def test_bootstrap_no_difference() -> None:
    rng = np.random.default_rng(6)
    y = rng.integers(0, 4, 600)
    wrong = (y + 1) % 4
    flip_a, flip_b = rng.random(600) < 0.3, rng.random(600) < 0.3  # same rate, different rows
    a, b = np.where(flip_a, wrong, y), np.where(flip_b, wrong, y)
    out = paired_bootstrap_gain(y, a, b, n_boot=1000, seed=1)
    assert out["low"] <= out["gain"] <= out["high"]
    assert out["low"] < 0 < out["high"] and out["excludes_zero"] is False
    # Identical predictions: every resample gives exactly zero.
    same = paired_bootstrap_gain(y, a, a, n_boot=200)
    assert same == {"gain": 0.0, "low": 0.0, "high": 0.0, "excludes_zero": False, "verdict": "no evidence"}


def test_bootstrap_matches_row_resampling_with_sklearn() -> None:
    rng = np.random.default_rng(7)
    n = 300
    y = rng.integers(0, 4, n)
    a = np.where(rng.random(n) < 0.75, y, rng.integers(0, 4, n))
    b = np.where(rng.random(n) < 0.65, y, rng.integers(0, 4, n))
    fast = paired_bootstrap_gain(y, a, b, n_boot=2000, seed=0, labels=range(4))
    gains = []
    for _ in range(600):
        idx = rng.integers(0, n, n)
        gains.append(sk_f1(y[idx], a[idx], list(range(4))) - sk_f1(y[idx], b[idx], list(range(4))))
    low, high = np.quantile(gains, [0.025, 0.975])
    # Same sampling distribution; only Monte Carlo noise separates the two.
    assert fast["low"] == pytest.approx(low, abs=0.015)
    assert fast["high"] == pytest.approx(high, abs=0.015)


def test_pattern_resampling_is_a_multinomial_of_the_rows() -> None:
    # 3 common patterns (>= 8 rows) and 30 rare ones, so both sampling paths run.
    pattern = np.concatenate([np.repeat([0, 1, 2], [200, 50, 8]), np.arange(3, 33), np.arange(3, 18)])
    n, n_patterns, n_boot = len(pattern), 33, 20000
    draws = _resample_pattern_counts(pattern, n_patterns, n_boot, np.random.default_rng(0))
    assert draws.shape == (n_boot, n_patterns)
    np.testing.assert_array_equal(draws.sum(axis=1), n)  # every resample has exactly n rows
    p = np.bincount(pattern) / n
    # Multinomial(n, p) moments; tolerances are ~5 standard errors.
    standard_error = np.sqrt(n * p * (1 - p) / n_boot)
    assert (np.abs(draws.mean(axis=0) - n * p) <= 5 * standard_error).all()
    np.testing.assert_allclose(draws.var(axis=0), n * p * (1 - p), rtol=0.1)
    cov = np.cov(draws[:, 0], draws[:, 1])[0, 1]
    assert cov == pytest.approx(-n * p[0] * p[1], rel=0.15)


def correlated_members(rng, n_members=4, n_rows=600, n_classes=4):
    y = rng.integers(0, n_classes, n_rows)
    shared = rng.normal(size=(n_rows, n_classes))
    out = {}
    for i in range(n_members):
        z = shared + rng.normal(size=(n_rows, n_classes))
        z[np.arange(n_rows), y] += 1.0 + 0.2 * i
        out[f"net{i}"] = softmax(z * (1 + i), axis=1)
    return out, y


def test_compare_rules_scores_learned_methods_by_crossfitting() -> None:
    rng = np.random.default_rng(8)
    members, y = correlated_members(rng)
    table = compare_rules(members, y, 4, seed=3, n_boot=200)
    assert list(table["method"][:4]) == ["member:net0", "member:net1", "member:net2", "member:net3"]
    expected = {"best_member", "hard", "soft", "geometric", "logit", "soft+temperature", "simplex", "caruana"}
    assert expected <= set(table["method"])
    rows = table.set_index("method")
    for name, p in members.items():
        f1 = sk_f1(y, p.argmax(axis=1), list(range(4)))
        assert rows.loc[f"member:{name}", "f1_macro_val"] == pytest.approx(f1)
        assert rows.loc[f"member:{name}", "f1_macro_honest"] == pytest.approx(f1)

    # The caruana row's honest score is exactly an independent cross-fit on the same folds.
    names = sorted(members)
    probs = np.stack([members[n] for n in names])

    def caruana_method(p, yy, nn):
        w = caruana_selection(p, yy, nn, seed=3)
        return lambda q: soft_vote(q[[nn.index(k) for k in sorted(w)]], [w[k] for k in sorted(w)])[0]

    honest = crossfit_many({"c": caruana_method}, probs, y, names, make_folds(y, 5, 3))["c"]
    assert rows.loc["caruana", "f1_macro_honest"] == pytest.approx(sk_f1(y, honest, list(range(4))))
    assert rows.loc["caruana", "acc_honest"] == pytest.approx((honest == y).mean())

    ensembles = table[table["kind"] == "ensemble"]
    assert ensembles[["gain", "ci_low", "ci_high"]].notna().all().all()
    assert (ensembles["ci_low"] <= ensembles["gain"]).all() and (ensembles["gain"] <= ensembles["ci_high"]).all()
    assert table.loc[table["kind"] != "ensemble", "gain"].isna().all()


def test_compare_rules_is_member_order_free() -> None:
    rng = np.random.default_rng(9)
    members, y = correlated_members(rng, n_rows=300)
    shuffled = {k: members[k] for k in reversed(list(members))}
    a = compare_rules(members, y, 4, n_boot=100)
    b = compare_rules(shuffled, y, 4, n_boot=100)
    pd.testing.assert_frame_equal(a, b)


def test_noise_members_gain_nothing_honestly() -> None:
    rng = np.random.default_rng(10)
    y = rng.integers(0, 3, 300)
    members = {f"noise{i}": rng.dirichlet(np.ones(3), size=300) for i in range(5)}
    table = compare_rules(members, y, 3, n_boot=300).set_index("method")
    # Fitting on the scored rows flatters the learned methods; cross-fitting does not.
    assert table.loc["caruana", "f1_macro_val"] > table.loc["caruana", "f1_macro_honest"]
    assert table.loc["caruana", "f1_macro_honest"] < 0.45
