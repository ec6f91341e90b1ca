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
from ensemble.metrics import macro_f1_many

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
    """The tables the weights multiply: probabilities, or their logs."""
    if space not in SPACES:
        raise ValueError(f"hill-climbing space must be one of {SPACES}, not {space!r}")
    probs = np.asarray(probs, dtype=np.float64)
    return probs if space == "prob" else np.log(np.clip(probs, LOG_EPS, None))


def blend_scores(weighted_sum: np.ndarray, total: float | np.ndarray, space: str) -> np.ndarray:
    """[..., rows, classes] row-normalised blend of a weighted sum of member tables whose weights sum to `total`."""
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
    """(labels, blended probabilities) for member probs [members, rows, classes] and signed weights."""
    w = np.asarray(weights, dtype=np.float64)
    if w.sum() <= 0:
        raise ValueError("hill-climbing weights must sum to more than zero")
    tables = member_tables(probs, space)
    blended = blend_scores(np.tensordot(w, tables, axes=1), w.sum(), space)
    return blended.argmax(-1), blended


def _candidate_order(grid: np.ndarray) -> np.ndarray:
    """Grid positions by |weight|, then by weight: the tie-break among equal scores."""
    return np.lexsort((grid, np.abs(grid)))


def hill_climb(probs: np.ndarray, y: np.ndarray, names: Sequence[str], *, space: str = DEFAULT_SPACE,
               grid: Sequence[float] = DEFAULT_GRID, max_steps: int = MAX_STEPS,
               tol: float = 1e-12) -> tuple[dict[str, float], list[Step]]:
    """Signed weights per member (members never added are left out) and the path of the climb.

    probs: [members, rows, classes]; y: [rows]; names: one per member (any order: candidates are
    tried in name order).
    """
    tables = member_tables(probs, space)
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
    for _ in range(max_steps):
        best: tuple[float, int, int] | None = None  # (score, member, grid position)
        for m in order:
            totals = weights.sum() + grid_arr
            ok = totals > 1e-9
            if not ok.any():
                continue
            sums = current[None] + grid_arr[ok, None, None] * tables[m][None]
            labels = blend_scores(sums, totals[ok], space).argmax(-1)
            scores = macro_f1_many(y, labels, n_classes)
            j = int(np.argmax(scores))  # the first maximum: the smallest |weight| among ties
            if best is None or scores[j] > best[0]:
                best = (float(scores[j]), m, int(np.flatnonzero(ok)[j]))
        if best is None or best[0] <= score + tol:
            break
        score, m, g = best
        weights[m] += grid_arr[g]
        current += grid_arr[g] * tables[m]
        path.append(Step(names[m], float(grid_arr[g]), score))
    chosen = {names[i]: float(weights[i]) for i in order if abs(weights[i]) > 1e-12}
    return chosen, path
