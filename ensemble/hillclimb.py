"""Hill climbing over member predictions with signed weights, on macro F1 (the Kaggle blend, for multiclass).

Start from the best single member (weight 1). At each step try every member with every weight of a grid
that includes **negative** weights (default -0.5 ... 1 in 0.05 steps, zero left out), add the candidate
that raises validation macro F1 most, and stop when no candidate raises it (or after `max_steps`).
A member may be added again, so its weight accumulates. A negative weight subtracts a member's share:
where two members make the same mistakes, taking some of one away can uncover the right class.

The blend of weights w over member tables X (probabilities, or log-probabilities with `space="log"`) is
`sum_m w_m X_m / sum_m w_m`; candidates whose weights sum to zero or less are skipped. In probability
space the blend is clipped at zero and renormalised per row (a row with nothing left is uniform); in log
space it is a softmax. Labels are the argmax, ties to the lowest class index.

Tie-break: among candidates with the same score the smaller |weight| wins, then the earlier member in name
order, so the climb is deterministic and prefers mild changes. Stop rule: a step must raise macro F1 by more
than `tol` (default 1e-12, i.e. strictly).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ensemble._checks import LOG_EPS
from ensemble.metrics import f1_from_counts, macro_f1_many

SPACES = ("prob", "log")
DEFAULT_SPACE = "prob"  # measured against "log" in benchmarks/ensemble_gain.py (see benchmarks/README.md)
DEFAULT_GRID = tuple(round(w, 2) for w in np.arange(-0.5, 1.0001, 0.05) if abs(w) > 1e-9)
MAX_STEPS = 50


@dataclass(frozen=True)
class Step:
    member: str
    weight: float
    score: float  # in-sample macro F1 after this step

    def to_dict(self) -> dict:
        return {"member": self.member, "weight": self.weight, "score": self.score}


def member_tables(probs: np.ndarray, space: str) -> np.ndarray:
    """The tables the weights multiply: probabilities, or their logs.

    Parameters
    ----------
    probs : ndarray, shape (n_members, n_rows, n_classes)
        Member probabilities, members in the order of `names`.
    space : str
        'prob' or 'log'.

    Returns
    -------
    ndarray, shape (n_members, n_rows, n_classes)
    """
    if space not in SPACES:
        raise ValueError(f"hill-climbing space must be one of {SPACES}, not {space!r}")
    probs = np.asarray(probs, dtype=np.float64)
    return probs if space == "prob" else np.log(np.clip(probs, LOG_EPS, None))


def blend_scores(weighted_sum: np.ndarray, total: float | np.ndarray, space: str) -> np.ndarray:
    """[..., rows, classes] row-normalised blend of a weighted sum of member tables whose weights sum to `total`.

    Parameters
    ----------
    weighted_sum : ndarray, shape (..., n_rows, n_classes)
    total : float or ndarray, shape (...)
        Sum of the weights behind each weighted sum.
    space : str

    Returns
    -------
    ndarray, shape (..., n_rows, n_classes)
        Row-normalised blend.
    """
    total = np.asarray(total, dtype=np.float64)[..., None, None]
    mean = weighted_sum / total
    if space == "log":
        mean = mean - mean.max(-1, keepdims=True)
        e = np.exp(mean)
        return e / e.sum(-1, keepdims=True)
    clipped = np.clip(mean, 0.0, None)
    sums = clipped.sum(-1, keepdims=True)
    uniform = np.full_like(clipped, 1.0 / clipped.shape[-1])
    return np.where(sums > 0, clipped / np.where(sums > 0, sums, 1.0), uniform)


def apply_blend(probs: np.ndarray, weights: Sequence[float], space: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, blended probabilities) for member probs [members, rows, classes] and signed weights.

    Parameters
    ----------
    probs : ndarray, shape (n_members, n_rows, n_classes)
        Member probabilities, members in the order of `names`.
    weights : sequence of float, length n_members
        Signed weights; they must sum to more than zero.
    space : str

    Returns
    -------
    labels : ndarray of int, shape (n_rows,)
        Argmax, ties to the lowest class.
    blended : ndarray, shape (n_rows, n_classes)
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.sum() <= 0:
        raise ValueError("hill-climbing weights must sum to more than zero")
    tables = member_tables(probs, space)
    blended = blend_scores(np.tensordot(w, tables, axes=1), w.sum(), space)
    return blended.argmax(-1), blended


def _candidate_order(grid: np.ndarray) -> np.ndarray:
    """Grid positions by |weight|, then by weight: the tie-break among equal scores."""
    return np.lexsort((grid, np.abs(grid)))


class _Candidates:
    """Labels and macro F1 of every candidate blend (current sum + g * one member), exactly as
    `blend_scores(...).argmax(-1)` gives them, computed only where a label can move.

    A row keeps the current sum's top class p for weight g when, for every other class c, the margin
    S_p - S_c + g (T_p - T_c) stays positive (and, on probabilities, S_p + g T_p stays positive, or the
    clipped row would be all zeros). That margin is at least lead + g·(T_p - max T) for g > 0 and
    lead + |g|·(min T - T_p) for g < 0 (lead: S_p minus the runner-up), which falls with |g|; rows whose
    bound clears a rounding slack at the grid's extremes keep p for every weight. Only the remaining
    (weight, row) pairs whose own bound does not clear it are blended, with `blend_scores` itself, so
    every label, every count and every F1 is the one the full blend gives. Each candidate's class
    counts are the current counts plus those few corrections.
    """

    def __init__(self, tables: np.ndarray, y: np.ndarray, space: str) -> None:
        self.tables, self.y, self.space = tables, y, space
        self.n_classes = tables.shape[2]
        self.rows = np.arange(tables.shape[1])
        self.t_max, self.t_min = tables.max(axis=2), tables.min(axis=2)  # [members, rows]
        self.n_true = np.bincount(y, minlength=self.n_classes)[None]
        self.t_scale = float(np.abs(tables).max())

    def start(self, current: np.ndarray) -> None:
        """Take the current weighted sum [rows, classes]: its top class, lead and class counts."""
        self.current = current
        self.s_scale = float(np.abs(current).max())
        self.top = current.argmax(axis=1)
        s_top = current[self.rows, self.top]
        if self.n_classes > 1:
            runner_up = np.partition(current, self.n_classes - 2, axis=1)[:, -2]
            self.lead = s_top - runner_up
        else:
            self.lead = np.full(len(self.rows), np.inf)
        self.s_top = s_top
        self.t_top = self.tables[:, self.rows, self.top]  # [members, rows]
        self.n_pred = np.bincount(self.top, minlength=self.n_classes)
        self.tp = np.bincount(self.top[self.top == self.y], minlength=self.n_classes)

    def _rows_that_may_move(self, m: int, g_lo: float, g_hi: float, slack: float) -> np.ndarray:
        """Rows whose top class may move for some weight in [g_lo, g_hi] (a cheap per-row bound)."""
        t_top = self.t_top[m]
        up, down = t_top - self.t_max[m], self.t_min[m] - t_top  # both <= 0
        keep = (self.lead + max(g_hi, 0.0) * up > slack) & (self.lead + max(-g_lo, 0.0) * down > slack)
        if self.space == "prob":
            keep &= (self.s_top + min(g_lo, 0.0) * t_top > slack) & (self.s_top > slack)
        return np.flatnonzero(~keep)

    def _limits(self, m: int, rows: np.ndarray, s: np.ndarray, t: np.ndarray,
                slack: float) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the weights g in (-neg, pos) that provably keep the top class: every margin
        S_p - S_c + g (T_p - T_c) stays above the slack (and, on probabilities, S_p + g T_p too).
        `s` and `t` are the current sum and member m's table on `rows`."""
        top = self.top[rows]
        lead = s[np.arange(len(rows)), top][:, None] - s          # S_p - S_c, [rows, classes]
        d = t[np.arange(len(rows)), top][:, None] - t             # T_p - T_c
        lead[np.arange(len(rows)), top] = np.inf                   # the top class itself never overtakes
        ok = lead > slack
        with np.errstate(divide="ignore", invalid="ignore"):
            room = np.where(ok, (lead - slack) / np.abs(d), 0.0)
        room = np.where(ok & (d == 0), np.inf, room)
        pos = np.where(d < 0, room, np.where(ok, np.inf, 0.0)).min(axis=1)
        neg = np.where(d > 0, room, np.where(ok, np.inf, 0.0)).min(axis=1)
        if self.space == "prob":
            s_top, t_top = self.s_top[rows], self.t_top[m, rows]
            positive = s_top > slack
            with np.errstate(divide="ignore", invalid="ignore"):
                neg = np.minimum(neg, np.where(t_top > 0, (s_top - slack) / t_top, np.inf))
            pos, neg = np.where(positive, pos, 0.0), np.where(positive, neg, 0.0)
        return pos, neg

    def scores(self, m: int, grid: np.ndarray, totals: np.ndarray) -> np.ndarray:
        """Macro F1 of current + g * tables[m] for each g of `grid` (weights summing to `totals`)."""
        c = self.n_classes
        # Rounding in sums of this size is ~1e-16 of them; the slack keeps a proof of "kept" far above it.
        slack = 1e-9 * (1.0 + self.s_scale + float(np.abs(grid).max()) * self.t_scale)
        rows = self._rows_that_may_move(m, float(grid.min()), float(grid.max()), slack)
        s, t = self.current[rows], self.tables[m, rows]
        pos, neg = self._limits(m, rows, s, t, slack)
        g = grid[None, :]
        local, g_i = np.nonzero(((g >= 0) & (g >= pos[:, None])) | ((g < 0) & (-g >= neg[:, None])))
        sums = s[local] + grid[g_i, None] * t[local]
        new = blend_scores(sums[:, None, :], totals[g_i], self.space)[:, 0].argmax(-1)
        row_i = rows[local]
        old = self.top[row_i]
        moved = new != old
        base = g_i[moved] * c
        new_m, old_m, y_m = new[moved], old[moved], self.y[row_i[moved]]
        size = len(grid) * c
        n_pred = self.n_pred + _signed_counts(base + new_m, base + old_m, size).reshape(len(grid), c)
        hits = _signed_counts((base + new_m)[y_m == new_m], (base + old_m)[y_m == old_m], size)
        return f1_from_counts(self.n_true, n_pred, self.tp + hits.reshape(len(grid), c))


def _signed_counts(plus: np.ndarray, minus: np.ndarray, size: int) -> np.ndarray:
    """bincount(plus) - bincount(minus), both of length `size`."""
    return np.bincount(plus, minlength=size) - np.bincount(minus, minlength=size)


def hill_climb(probs: np.ndarray, y: np.ndarray, names: Sequence[str], *, space: str = DEFAULT_SPACE,
               grid: Sequence[float] = DEFAULT_GRID, max_steps: int = MAX_STEPS,
               tol: float = 1e-12) -> tuple[dict[str, float], list[Step]]:
    """Signed weights per member and the path of the climb.

    Parameters
    ----------
    probs : ndarray, shape (n_members, n_rows, n_classes)
        Member probabilities.
    y : ndarray of int, shape (n_rows,)
        True labels.
    names : sequence of str, length n_members
        One per member, any order: candidates are tried in name order.
    space, grid, max_steps, tol
        Blend space (`SPACES`), the weights tried per step, the most steps, and the least rise in macro
        F1 a step must bring.

    Returns
    -------
    weights : dict of str to float
        Signed weight per member; members never added are left out.
    path : list of Step
        The first member, then each step taken, with its in-sample macro F1.
    """
    tables = member_tables(probs, space)
    y = np.asarray(y, dtype=np.int64)
    n_classes = tables.shape[2]
    order = sorted(range(len(names)), key=lambda i: names[i])
    grid_arr = np.asarray(grid, dtype=np.float64)
    grid_arr = grid_arr[_candidate_order(grid_arr)]
    singles = macro_f1_many(y, tables.argmax(-1), n_classes)
    first = max(order, key=lambda i: (singles[i], -order.index(i)))
    weights = np.zeros(len(names))
    weights[first] = 1.0
    current, score = tables[first].copy(), float(singles[first])
    path = [Step(names[first], 1.0, score)]
    candidates = _Candidates(tables, y, space)
    for _ in range(max_steps):
        totals = weights.sum() + grid_arr
        ok = np.flatnonzero(totals > 1e-9)
        if not len(ok):
            break
        candidates.start(current)
        best: tuple[float, int, int] | None = None  # (score, member, grid position)
        for m in order:
            scores = candidates.scores(m, grid_arr[ok], totals[ok])
            j = int(np.argmax(scores))  # the first maximum: the smallest |weight| among ties
            if best is None or scores[j] > best[0]:
                best = (float(scores[j]), m, int(ok[j]))
        if best is None or best[0] <= score + tol:
            break
        score, m, g = best
        weights[m] += grid_arr[g]
        current += grid_arr[g] * tables[m]
        path.append(Step(names[m], float(grid_arr[g]), score))
    chosen = {names[i]: float(weights[i]) for i in order if abs(weights[i]) > 1e-12}
    return chosen, path
