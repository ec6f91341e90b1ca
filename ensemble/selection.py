"""Member weights learned on validation rows: Caruana's greedy ensemble selection and
NLL-optimal weights on the simplex.

Both work on the members sorted by name, so the result is the same whatever
order the members come in, and ties between equally good candidates go to the
alphabetically first name.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.optimize import minimize
from scipy.special import softmax

from ensemble._checks import LOG_EPS, as_labels, as_probs, check_names
from ensemble.metrics import f1_from_counts

Metric = Literal["f1", "nll"]

# A row whose summed-probability margin exceeds 1 cannot change its argmax when one
# more probability vector (entries in [0, 1]) is added; the slack absorbs rounding.
_MARGIN_SLACK = 1e-9


class _F1Scorer:
    """Macro F1 of the running soft vote plus each candidate, rescoring only rows that can flip."""

    def __init__(self, probs: np.ndarray, y: np.ndarray) -> None:
        self.probs, self.y = probs, y
        n_rows, self.n_classes = probs.shape[1], probs.shape[2]
        self.total = np.zeros((n_rows, self.n_classes))
        self.pred = np.zeros(n_rows, dtype=np.int64)
        self.size = 0
        self.n_true = np.bincount(y, minlength=self.n_classes)

    def scores(self, candidates: np.ndarray) -> np.ndarray:
        c = self.n_classes
        if self.size == 0:
            active = np.ones(len(self.y), dtype=bool)
        else:
            top2 = np.partition(self.total, c - 2, axis=1)[:, -2:] if c > 1 else np.zeros((len(self.y), 2))
            active = (top2[:, 1] - top2[:, 0]) <= 1.0 + _MARGIN_SLACK * (self.size + 1)
        fixed_pred = self.pred[~active]
        base_pred = np.bincount(fixed_pred, minlength=c)
        base_tp = np.bincount(fixed_pred[fixed_pred == self.y[~active]], minlength=c)

        cand = self.probs[np.ix_(candidates, np.flatnonzero(active))] + self.total[active][None]
        cand_pred = cand.argmax(axis=2)
        offsets = (np.arange(len(candidates)) * c)[:, None]
        bins = cand_pred + offsets
        n_pred = np.bincount(bins.ravel(), minlength=len(candidates) * c).reshape(-1, c)
        tp = np.bincount(bins[cand_pred == self.y[active][None]], minlength=len(candidates) * c).reshape(-1, c)
        return f1_from_counts(self.n_true[None], n_pred + base_pred, tp + base_tp)

    def add(self, member: int) -> None:
        self.total += self.probs[member]
        self.size += 1
        self.pred = self.total.argmax(axis=1)


class _NLLScorer:
    """Negative NLL of the running soft vote plus each candidate; only the true-class column matters."""

    def __init__(self, probs: np.ndarray, y: np.ndarray) -> None:
        # The mixture of normalised distributions is normalised, so its NLL needs p[y] alone.
        self.p_true = probs[:, np.arange(len(y)), y]
        self.total = np.zeros(len(y))
        self.size = 0

    def scores(self, candidates: np.ndarray) -> np.ndarray:
        mix = (self.total[None] + self.p_true[candidates]) / (self.size + 1)
        return np.log(np.maximum(mix, LOG_EPS)).mean(axis=1)

    def add(self, member: int) -> None:
        self.total += self.p_true[member]
        self.size += 1


def _greedy_counts(
    probs: np.ndarray, y: np.ndarray, pool: np.ndarray, metric: Metric, n_iterations: int, init_best_n: int
) -> np.ndarray:
    """How many times each member of `pool` is picked by greedy forward selection with replacement."""
    scorer = _F1Scorer(probs, y) if metric == "f1" else _NLLScorer(probs, y)
    counts = np.zeros(probs.shape[0], dtype=np.int64)
    if init_best_n > 0:
        single = scorer.scores(pool)
        # Stable sort on -score keeps name order among equals.
        for m in pool[np.argsort(-single, kind="stable")[:init_best_n]]:
            scorer.add(m)
            counts[m] += 1
    for _ in range(n_iterations):
        best = pool[int(np.argmax(scorer.scores(pool)))]
        scorer.add(best)
        counts[best] += 1
    return counts


def caruana_selection(
    probs: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    *,
    metric: Metric = "f1",
    n_iterations: int = 50,
    init_best_n: int = 0,
    bagging: bool = False,
    n_bags: int = 20,
    bag_fraction: float = 0.5,
    seed: int = 0,
) -> dict[str, float]:
    """Greedy forward selection with replacement (Caruana et al. 2004; auto-sklearn's EnsembleSelection).

    Starts from the `init_best_n` best single members, then `n_iterations` times
    adds the member (repeats allowed) whose addition maximises the score of the
    soft vote: macro F1 (`metric="f1"`) or minus the NLL (`metric="nll"`).
    With `bagging`, selection runs on `n_bags` random member subsets of size
    `bag_fraction * members` (seeded) and the per-bag weights are averaged,
    which damps overfitting to the validation rows.

    Returns {name: weight} for the selected members only; weights sum to 1.
    """
    if metric not in ("f1", "nll"):
        raise ValueError(f"metric must be 'f1' or 'nll'; got {metric!r}")
    if n_iterations < 0 or init_best_n < 0 or n_iterations + init_best_n == 0:
        raise ValueError("need n_iterations + init_best_n >= 1 (both non-negative)")
    probs = as_probs(probs)
    names = check_names(names, probs.shape[0])
    y = as_labels(y, probs.shape[1])
    if y.max() >= probs.shape[2]:
        raise ValueError(f"label {int(y.max())} is out of range for {probs.shape[2]} classes")
    # Candidates are visited in name order so argmax ties go to the first name.
    by_name = np.argsort(names)
    n_members = len(names)

    if not bagging:
        weights = _greedy_counts(probs, y, by_name, metric, n_iterations, init_best_n)
        weights = weights / weights.sum()
    else:
        if n_bags < 1 or not 0 < bag_fraction <= 1:
            raise ValueError("bagging needs n_bags >= 1 and 0 < bag_fraction <= 1")
        rng = np.random.default_rng(seed)
        bag_size = max(1, int(round(bag_fraction * n_members)))
        weights = np.zeros(n_members)
        for _ in range(n_bags):
            # Bags are drawn over name ranks, so a seed picks the same names in any input order.
            pool = by_name[np.sort(rng.choice(n_members, size=bag_size, replace=False))]
            counts = _greedy_counts(probs, y, pool, metric, n_iterations, min(init_best_n, bag_size))
            weights += counts / counts.sum()
        weights /= n_bags
    return {names[i]: float(weights[i]) for i in by_name if weights[i] > 0}


def _mixture_nll_and_grad(theta: np.ndarray, p_true: np.ndarray) -> tuple[float, np.ndarray]:
    w = softmax(theta)
    mix = np.maximum(w @ p_true, LOG_EPS)
    grad_w = -(p_true / mix).mean(axis=1)
    # Chain rule through softmax: d/dtheta_j = w_j * (g_j - sum_k w_k g_k).
    return float(-np.log(mix).mean()), w * (grad_w - w @ grad_w)


def fit_simplex_weights(probs: np.ndarray, y: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Weights on the simplex (>= 0, sum 1) minimising the validation NLL of the soft vote.

    Weights are softmax(theta) and theta is fitted with L-BFGS-B and the exact
    gradient; only each member's probability of the true class is needed,
    because a weighted mixture of distributions is already normalised.
    Returns {name: weight} for every member.
    """
    probs = as_probs(probs)
    names = check_names(names, probs.shape[0])
    y = as_labels(y, probs.shape[1])
    if y.max() >= probs.shape[2]:
        raise ValueError(f"label {int(y.max())} is out of range for {probs.shape[2]} classes")
    order = np.argsort(names)
    p_true = probs[:, np.arange(len(y)), y][order]
    result = minimize(
        _mixture_nll_and_grad,
        np.zeros(len(names)),
        args=(p_true,),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 500},
    )
    w = softmax(result.x)
    return {names[i]: float(wi) for i, wi in zip(order, w / w.sum())}
