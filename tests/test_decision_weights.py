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
