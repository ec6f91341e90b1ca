"""Macro-F1 decision weights: argmax_k w_k p_k fitted by coordinate ascent, on top of any rule."""
from __future__ import annotations

import numpy as np
from scipy.special import softmax

from ensemble.compare import compare
from ensemble.decision_weights import apply_decision_weights, fit_decision_weights
from ensemble.metrics import macro_f1
from ensemble.recipe import Recipe
from ensemble.recipe import apply as apply_recipe


def imbalanced(rng, n_rows, n_classes=5):
    """Rare classes whose probabilities are biased toward the majority class 0."""
    y = rng.choice(n_classes, n_rows, p=[0.6, 0.15, 0.1, 0.1, 0.05])
    z = rng.normal(size=(n_rows, n_classes))
    z[np.arange(n_rows), y] += 1.6
    z[:, 0] += 2.0
    return y, softmax(z, axis=1)


def test_weights_raise_macro_f1_on_fresh_rows() -> None:
    rng = np.random.default_rng(0)
    y_fit, p_fit = imbalanced(rng, 3000)
    y_new, p_new = imbalanced(rng, 3000)
    w = fit_decision_weights(p_fit, y_fit)
    assert max(w) == 1.0 and w[0] < 1.0  # the majority class is weighed down
    before = macro_f1(y_new, p_new.argmax(1))
    after = macro_f1(y_new, apply_decision_weights(p_new, w)[0])
    assert after > before + 0.08


def test_coordinate_ascent_never_loses_on_its_own_rows() -> None:
    rng = np.random.default_rng(1)
    for _ in range(5):
        y = rng.integers(0, 4, 80)
        p = rng.dirichlet(np.ones(4), size=80)
        w = fit_decision_weights(p, y, 4)
        assert macro_f1(y, apply_decision_weights(p, w)[0], range(4)) >= macro_f1(y, p.argmax(1), range(4))
    ones = apply_decision_weights(p, [1.0] * 4)[0]
    assert np.array_equal(ones, p.argmax(1))


def test_decision_weights_round_trip_in_a_recipe(tmp_path) -> None:
    rng = np.random.default_rng(2)
    y, p = imbalanced(rng, 400)
    members = {"a": p, "b": softmax(np.log(p) + rng.normal(scale=0.5, size=p.shape), axis=1)}
    table = compare(members, y, 5, n_boot=100, extra=["geometric+f1w"])
    rows = table.table.set_index("method")
    assert {"soft+f1w", "stack+f1w", "geometric+f1w"} <= set(rows.index)
    # Cross-fitted: the honest score is not the in-sample one.
    assert rows.loc["soft+f1w", "f1_macro_val"] != rows.loc["soft+f1w", "f1_macro_honest"]
    recipe = table.recipes["geometric+f1w"]
    assert recipe.rule == "geometric" and len(recipe.decision_weights) == 5
    again = Recipe.from_yaml(recipe.to_yaml(tmp_path / "r.yaml"))
    assert again.decision_weights == recipe.decision_weights
    for got, want in zip(apply_recipe(again, members), apply_recipe(recipe, members)):
        assert np.array_equal(got, want)


def plain_decision_weights(scores, y, n_classes, n_passes=3):
    """The coordinate ascent scoring every row for every candidate (the code before issue 24's speed-up)."""
    from ensemble.decision_weights import GRID
    from ensemble.metrics import macro_f1_many

    n_rows, n_cls = scores.shape
    w = np.ones(n_cls)
    current = float(macro_f1_many(y, (scores * w).argmax(axis=1)[None], n_classes)[0])
    for _ in range(n_passes):
        moved = False
        for k in range(n_cls):
            weighted = scores * w
            weighted[:, k] = -np.inf
            other = weighted.argmax(axis=1)
            other_val = weighted[np.arange(n_rows), other]
            cand = w[k] * GRID
            mine = cand[:, None] * scores[None, :, k]
            wins = (mine > other_val[None]) | ((mine == other_val[None]) & (k < other)[None])
            f1 = macro_f1_many(y, np.where(wins, k, other[None]), n_classes)
            best = int(np.argmax(f1))
            if f1[best] > current + 1e-12:
                w[k], current, moved = cand[best], float(f1[best]), True
        if not moved:
            break
    return [float(v) for v in w / w.max()]


def test_the_fit_equals_scoring_every_row_for_every_candidate() -> None:
    rng = np.random.default_rng(3)
    for n_rows, decimals in [(3000, None), (500, 1), (800, 2)]:
        y, p = imbalanced(rng, n_rows)
        if decimals is not None:  # coarse tables: exact ties between classes, which go to the lower index
            p = np.round(p, decimals)
        w = fit_decision_weights(p, y, 5)
        assert w == plain_decision_weights(p, y, 5)
        assert w != [1.0] * 5  # the ascent moved, so the candidates' scores were compared
    hard_shares = np.eye(4)[rng.integers(0, 4, 200)] * 0.5 + np.eye(4)[rng.integers(0, 4, 200)] * 0.5
    y = rng.integers(0, 4, 200)
    assert fit_decision_weights(hard_shares, y, 4) == plain_decision_weights(hard_shares, y, 4)
