"""Caruana's greedy ensemble selection (NLL-optimal simplex weights: ensemble/simplex.py). It works on the
members sorted by name, so the result is the same whatever order they come in, and ties between equally
good candidates go to the alphabetically first name.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from ensemble._checks import LOG_EPS, fit_inputs
from ensemble.metrics import f1_from_counts, macro_f1_many
from ensemble.simplex import fit_simplex_weights  # noqa: F401  (re-exported: callers read it here)

Metric = Literal["f1", "nll"]

# Rounding slack for the margin tests below; margins are sums of at most a few
# hundred probabilities, so accumulated rounding stays far below this.
_MARGIN_SLACK = 1e-9


def _signed_counts(plus: np.ndarray, minus: np.ndarray, size: int) -> np.ndarray:
    """bincount(plus) - bincount(minus), both of length `size`."""
    return np.bincount(plus, minlength=size) - np.bincount(minus, minlength=size)


class _F1Scorer:
    """Macro F1 of the running soft vote plus each candidate, recomputing only the rows that can flip.

    Adding member m to the running sum S can change row r's prediction only if
    m's favourite class there is not the current prediction AND its edge over
    the current prediction, gap = max_c p_m[c] - p_m[pred], reaches the row's
    current lead of pred over the runner-up. (A member that agrees with the
    prediction can never move it: both sums grow at least as much for pred, and
    equal sums keep the lower index.) `lower` holds a lower bound on that lead,
    exact for rows recomputed at the last step, so testing lower <= gap never
    skips a row that could flip. All other rows keep their class, so each
    candidate's F1 counts are the current counts plus a few corrections.
    `gap` depends on the current prediction only, so it is refreshed just for
    the rows whose prediction changed.
    """

    def __init__(self, probs: np.ndarray, y: np.ndarray, favourite: np.ndarray, favourite_p: np.ndarray) -> None:
        self.probs, self.y = probs, y
        self.favourite, self.favourite_p = favourite, favourite_p  # per member: argmax, max [members, rows]
        n_rows, self.n_classes = probs.shape[1], probs.shape[2]
        # Row-major views: np.take on a flat index is several times faster than 2-D fancy indexing.
        self.member_rows = probs.reshape(-1, self.n_classes)
        self.rows = np.arange(n_rows)
        self.total = np.zeros((n_rows, self.n_classes))
        self.pred = np.zeros(n_rows, dtype=np.int64)  # argmax of an all-zero sum
        self.lower = np.zeros(n_rows)  # ... whose lead is exactly 0
        self.size = 0
        self.n_true = np.bincount(y, minlength=self.n_classes)
        self.n_pred = np.bincount(self.pred, minlength=self.n_classes)
        self.tp = np.bincount(self.pred[self.pred == y], minlength=self.n_classes)
        # Filled by the first add(); until then (and for a single class) no row can move.
        self.gap = np.full(favourite.shape, -np.inf)
        self.gap_max = np.full(n_rows, -np.inf)  # per row, the largest gap of any member
        self._runner_up: dict[int, np.ndarray] = {}
        self._last: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def _refresh_gap(self, rows: np.ndarray | slice) -> None:
        """gap[m, r] (+ slack) where member m disagrees with the prediction, -inf where it agrees."""
        pred = self.pred[rows]
        p_at_pred = self.probs[:, self.rows[rows], pred]
        disagrees = self.favourite[:, rows] != pred[None]
        gap = np.where(disagrees, self.favourite_p[:, rows] - p_at_pred + _MARGIN_SLACK, -np.inf)
        self.gap[:, rows] = gap
        self.gap_max[rows] = gap.max(axis=0)

    def scores(self, candidates: np.ndarray) -> np.ndarray:
        c, n_members = self.n_classes, self.probs.shape[0]
        # Scoring every member in storage order avoids copying the [members, rows]
        # tables; the scores are put in the candidates' order at the end.
        every = len(candidates) == n_members
        scored = np.arange(n_members) if every else candidates
        if self.size == 0:
            # From an empty sum each candidate alone decides every row.
            self._last = None
            return macro_f1_many(self.y, self.favourite[candidates], c)
        # Most rows are settled (no member can move them); test only the others.
        live = np.flatnonzero(self.lower <= self.gap_max)
        gap = self.gap[:, live] if every else self.gap[np.ix_(candidates, live)]
        cand_i, live_i = np.nonzero(self.lower[live][None] <= gap)
        row_i = live[live_i]
        member_i = scored[cand_i]
        picked = self.member_rows.take(member_i * len(self.y) + row_i, axis=0)
        new = (picked + self.total.take(row_i, axis=0)).argmax(axis=1)
        self._last = (scored, cand_i, row_i, new)

        # Each row that moves takes one prediction (and maybe one hit) from its old
        # class and gives it to the new one, for that candidate only.
        old = self.pred[row_i]
        moved = new != old
        base = cand_i[moved] * c
        new_m, old_m, y_m = new[moved], old[moved], self.y[row_i[moved]]
        k = len(scored)
        n_pred = self.n_pred + _signed_counts(base + new_m, base + old_m, k * c).reshape(k, c)
        hits = _signed_counts((base + new_m)[y_m == new_m], (base + old_m)[y_m == old_m], k * c)
        scores = f1_from_counts(self.n_true[None], n_pred, self.tp + hits.reshape(k, c))
        return scores[candidates] if every else scores

    def _start_from(self, member: int) -> None:
        """The sum is one member: its own predictions, with exact leads."""
        self.pred = self.favourite[member].copy()
        self.lower = self.favourite_p[member] - self._runner_up_of(member)
        self.n_pred = np.bincount(self.pred, minlength=self.n_classes)
        self.tp = np.bincount(self.pred[self.pred == self.y], minlength=self.n_classes)
        self._refresh_gap(slice(None))  # a slice, not an index array: every row, without fancy indexing

    def _runner_up_of(self, member: int) -> np.ndarray:
        """Second-largest probability of each row of one member, computed once per member."""
        if member not in self._runner_up:
            p = self.probs[member]
            self._runner_up[member] = np.partition(p, p.shape[1] - 2, axis=1)[:, -2]
        return self._runner_up[member]

    def add(self, member: int) -> None:
        p = self.probs[member]
        self.total += p
        self.size += 1
        if self.n_classes == 1:
            return
        if self.size == 1:
            self._start_from(member)
            return
        # Rows that keep their class: lead grows by p[pred] - max_{c != pred} p[c].
        agrees = self.favourite[member] == self.pred
        best_other = np.where(agrees, self._runner_up_of(member), self.favourite_p[member])
        self.lower += p.ravel().take(self.rows * self.n_classes + self.pred) - best_other

        # Rows that were rescored for this member take their new class and an exact lead.
        if self._last is None:
            raise RuntimeError("scores() must run before add()")
        scored, cand_i, row_i, new = self._last
        pick = cand_i == int(np.flatnonzero(scored == member)[0])
        rows, new = row_i[pick], new[pick]
        old, y_rows = self.pred[rows], self.y[rows]
        self.n_pred += _signed_counts(new, old, self.n_classes)
        self.tp += _signed_counts(new[new == y_rows], old[old == y_rows], self.n_classes)
        self.pred[rows] = new
        top_two = np.partition(self.total[rows], self.n_classes - 2, axis=1)[:, -2:]
        self.lower[rows] = top_two[:, 1] - top_two[:, 0]
        self._refresh_gap(rows[new != old])
        self._last = None


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


def _greedy_path(
    probs: np.ndarray,
    y: np.ndarray,
    pool: np.ndarray,
    metric: Metric,
    n_iterations: int,
    init_best_n: int,
    favourites: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[list[np.ndarray], list[float]]:
    """Greedy forward selection with replacement over `pool` (member indices in name order): the pick
    counts after each of the `n_iterations` greedy steps and the in-sample score at each; argmax ties go
    to the earlier name. The `init_best_n` starting members come before the first step."""
    scorer = _F1Scorer(probs, y, *favourites) if favourites is not None else _NLLScorer(probs, y)
    counts = np.zeros(probs.shape[0], dtype=np.int64)
    path: list[np.ndarray] = []
    scores: list[float] = []
    if init_best_n > 0:
        single = scorer.scores(pool)
        # Stable sort on -score keeps name order among equals.
        for m in pool[np.argsort(-single, kind="stable")[:init_best_n]]:
            if counts.any():
                scorer.scores(pool)  # the F1 scorer updates from the scores of the current sum
            scorer.add(m)
            counts[m] += 1
    if n_iterations == 0:
        return [counts], [float("nan")]
    for _ in range(n_iterations):
        candidate_scores = scorer.scores(pool)
        i = int(np.argmax(candidate_scores))
        scorer.add(pool[i])
        counts[pool[i]] += 1
        path.append(counts.copy())
        scores.append(float(candidate_scores[i]))
    return path, scores


def _greedy_counts(probs, y, pool, metric, n_iterations, init_best_n, favourites, use_best: bool) -> np.ndarray:
    """The final pick counts, or with `use_best` those at the first best point of the selection curve."""
    path, scores = _greedy_path(probs, y, pool, metric, n_iterations, init_best_n, favourites)
    # AutoGluon's use_best: the first step with the best in-sample score, i.e. the smallest such ensemble.
    return path[int(np.nanargmax(scores))] if use_best and not np.isnan(scores).all() else path[-1]


def _prune(probs: np.ndarray, y: np.ndarray, by_name: np.ndarray, nbest: int | None) -> np.ndarray:
    """auto-sklearn's ensemble_nbest: keep the `nbest` best single members (macro F1; ties by name)."""
    if nbest is None or nbest >= len(by_name):
        return by_name
    if nbest < 1:
        raise ValueError(f"nbest must be at least 1; got {nbest}")
    single = macro_f1_many(y, probs[by_name].argmax(axis=2), probs.shape[2])
    keep = np.sort(np.argsort(-single, kind="stable")[:nbest])
    return by_name[keep]


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
    nbest: int | None = None,
    use_best: bool = False,
) -> dict[str, float]:
    """Greedy forward selection with replacement (Caruana et al. 2004; auto-sklearn's EnsembleSelection).

    Starts from the `init_best_n` best single members, then `n_iterations` times
    adds the member (repeats allowed) whose addition maximises the score of the
    soft vote: macro F1 (`metric="f1"`) or minus the NLL (`metric="nll"`).
    With `bagging`, selection runs on `n_bags` random member subsets of size
    `bag_fraction * members` (seeded) and the per-bag weights are averaged,
    which damps overfitting to the validation rows. Size control: `nbest` keeps
    only the best `nbest` single members as candidates (auto-sklearn's
    ensemble_nbest), and `use_best` stops at the first best point of the
    selection curve instead of after the last step (AutoGluon's use_best).

    Parameters: probs (n_members, n_rows, n_classes), y (n_rows,) int labels, names (n_members,), and the
    options above. Returns {name: weight} for the selected members only; weights sum to 1.
    """
    probs, names, y, by_name, favourites = _selection_inputs(probs, y, names, metric, n_iterations, init_best_n)
    by_name = _prune(probs, y, by_name, nbest)
    n_members = len(names)
    if not bagging:
        weights = _greedy_counts(probs, y, by_name, metric, n_iterations, init_best_n, favourites, use_best)
        weights = weights / weights.sum()
    else:
        if n_bags < 1 or not 0 < bag_fraction <= 1:
            raise ValueError("bagging needs n_bags >= 1 and 0 < bag_fraction <= 1")
        rng = np.random.default_rng(seed)
        n_pool = len(by_name)
        bag_size = max(1, int(round(bag_fraction * n_pool)))
        weights = np.zeros(n_members)
        for _ in range(n_bags):
            # Bags are drawn over name ranks, so a seed picks the same names in any input order.
            pool = by_name[np.sort(rng.choice(n_pool, size=bag_size, replace=False))]
            counts = _greedy_counts(probs, y, pool, metric, n_iterations, min(init_best_n, bag_size), favourites,
                                    use_best)
            weights += counts / counts.sum()
        weights /= n_bags
    return {names[i]: float(weights[i]) for i in np.argsort(names) if weights[i] > 0}


def _selection_inputs(probs, y, names, metric, n_iterations, init_best_n):
    if metric not in ("f1", "nll"):
        raise ValueError(f"metric must be 'f1' or 'nll'; got {metric!r}")
    if n_iterations < 0 or init_best_n < 0 or n_iterations + init_best_n == 0:
        raise ValueError("need n_iterations + init_best_n >= 1 (both non-negative)")
    probs, names, y = fit_inputs(probs, names, y)
    # Candidates are visited in name order so argmax ties go to the first name.
    by_name = np.argsort(names)
    favourites = None
    if metric == "f1":
        # Each member's favourite class and its probability, shared by every bag.
        favourite = probs.argmax(axis=2)
        favourites = (favourite, np.take_along_axis(probs, favourite[:, :, None], axis=2)[:, :, 0])
    return probs, names, y, by_name, favourites


def selection_counts(probs: np.ndarray, y: np.ndarray, names: Sequence[str], *, n_iterations: int = 50,
                     nbest: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Caruana's selection curve (macro F1, no bagging) as pick counts.

    Parameters
    ----------
    probs : ndarray, shape (n_members, n_rows, n_classes)
    y : ndarray of int, shape (n_rows,)
    names : sequence of str, length n_members
    n_iterations, nbest
        Greedy steps, and how many best single members stay candidates (see `caruana_selection`).

    Returns
    -------
    counts : ndarray of int, shape (n_iterations, n_members)
        Picks per member (in the order of `names`) after each step.
    scores : ndarray, shape (n_iterations,)
        In-sample macro F1 after each step.
    """
    probs, names, y, by_name, favourites = _selection_inputs(probs, y, names, "f1", n_iterations, 0)
    path, scores = _greedy_path(probs, y, _prune(probs, y, by_name, nbest), "f1", n_iterations, 0, favourites)
    return np.array(path), np.array(scores)


def counts_to_weights(counts: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """{name: count / total} for the members picked at least once, in name order."""
    return {names[i]: float(counts[i] / counts.sum()) for i in np.argsort(names) if counts[i] > 0}


def selection_path(probs: np.ndarray, y: np.ndarray, names: Sequence[str], *, n_iterations: int = 50,
                   nbest: int | None = None) -> tuple[list[dict[str, float]], list[float]]:
    """Caruana's selection curve (macro F1, no bagging): the weights after each step and the in-sample
    macro F1 there. The report draws it; `use_best` cuts it at its first maximum.

    Parameters and the run are `selection_counts`'s. Returns (weights, scores): a list of n_iterations
    {name: weight} dicts (the members picked so far, weights summing to 1) and a list of n_iterations F1s.
    """
    counts, scores = selection_counts(probs, y, names, n_iterations=n_iterations, nbest=nbest)
    names = list(names)
    return [counts_to_weights(c, names) for c in counts], [float(v) for v in scores]
