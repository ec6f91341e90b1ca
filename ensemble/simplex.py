"""NLL-optimal member weights on the simplex (the `simplex` rule); see `fit_simplex_weights`."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ensemble._checks import LOG_EPS, fit_inputs
from ensemble._math import one_blas_thread


def _mixture_nll_and_grad(w: np.ndarray, p_true: np.ndarray) -> tuple[float, np.ndarray]:
    mix = np.maximum(w @ p_true, LOG_EPS)
    return float(-np.log(mix).mean()), -(p_true / mix).mean(axis=1)


def fit_simplex_weights(probs: np.ndarray, y: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Weights on the simplex (>= 0, sum 1) minimising the validation NLL of the soft vote.

    Solved with SLSQP on the explicit constraints (bounds [0, 1], sum = 1) and
    the exact gradient, so weights can reach exactly 0 (a softmax
    parameterisation cannot). Only each member's probability of the true class
    is needed, because a weighted mixture of distributions is already
    normalised; the NLL is convex in the weights, so the optimum is global.
    Returns {name: weight} for every member.

    Parameters
    ----------
    probs : ndarray, shape (n_members, n_rows, n_classes)
        Member probabilities, members in the order of `names`.
    y : ndarray of int, shape (n_rows,)
        True labels.
    names : sequence of str, length n_members
        Member names.

    Returns
    -------
    dict of str to float
        Every member's weight, summing to 1.
    """
    probs, names, y = fit_inputs(probs, names, y)
    order = np.argsort(names)
    p_true = probs[:, np.arange(len(y)), y][order]
    n = len(names)
    # lazy: scipy.optimize is slow to import and only a fit needs it; --help reads the rule table
    from scipy.optimize import minimize

    with one_blas_thread():
        result = minimize(
            _mixture_nll_and_grad,
            np.full(n, 1.0 / n),
            args=(p_true,),
            jac=True,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * n,
            constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}],
            options={"maxiter": 500, "ftol": 1e-12},
        )
    w = result.x
    # Values within 1e-9 of the bound are solver noise on weights that are truly 0.
    w = np.where(w > 1e-9, w, 0.0)
    w /= w.sum()
    return {names[i]: float(wi) for i, wi in zip(order, w)}
