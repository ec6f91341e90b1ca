"""Hill climbing (ensemble/hillclimb.py) blends only the rows a candidate can move; these tests hold it to the
plain climb that blends every row for every candidate (the code before issue 24's speed-up), step for step."""
from __future__ import annotations

import numpy as np
import pytest

from ensemble.hillclimb import DEFAULT_GRID, _candidate_order, blend_scores, hill_climb, member_tables
from ensemble.metrics import macro_f1_many


def plain_climb(probs, y, names, space="prob", grid=DEFAULT_GRID, max_steps=50, tol=1e-12):
    """Every candidate blended on every row: slow, obviously what the module docstring says."""
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
    path = [(names[first], 1.0, score)]
    for _ in range(max_steps):
        best = None
        for m in order:
            totals = weights.sum() + grid_arr
            ok = totals > 1e-9
            if not ok.any():
                continue
            sums = current[None] + grid_arr[ok, None, None] * tables[m][None]
            scores = macro_f1_many(y, blend_scores(sums, totals[ok], space).argmax(-1), n_classes)
            j = int(np.argmax(scores))
            if best is None or scores[j] > best[0]:
                best = (float(scores[j]), m, int(np.flatnonzero(ok)[j]))
        if best is None or best[0] <= score + tol:
            break
        score, m, g = best
        weights[m] += grid_arr[g]
        current += grid_arr[g] * tables[m]
        path.append((names[m], float(grid_arr[g]), score))
    return {names[i]: float(weights[i]) for i in order if abs(weights[i]) > 1e-12}, path


def members(seed, n_members=5, n_rows=400, n_classes=6, decimals=None):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_rows)
    probs = []
    for m in range(n_members):
        logits = rng.normal(0, 1.0 + 0.3 * m, (n_rows, n_classes))
        logits[np.arange(n_rows), y] += rng.uniform(0.2, 1.5)
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        if decimals is not None:  # coarse probabilities: many exact ties between classes and members
            p = np.round(p, decimals)
            p[p.sum(1) == 0, 0] = 1.0
            p /= p.sum(1, keepdims=True)
        probs.append(p)
    return np.stack(probs), y


@pytest.mark.parametrize("space", ["prob", "log"])
@pytest.mark.parametrize("seed,decimals", [(0, None), (1, None), (2, 1), (3, 2)])
def test_the_climb_equals_blending_every_row(space, seed, decimals):
    probs, y = members(seed, decimals=decimals)
    names = [f"m{i}" for i in range(len(probs))][::-1]  # not in name order
    weights, path = hill_climb(probs, y, names, space=space)
    ref_weights, ref_path = plain_climb(probs, y, names, space=space)
    assert weights == ref_weights
    assert [(s.member, s.weight, s.score) for s in path] == ref_path
    assert len(path) > 2  # the climb took steps, so candidates were really compared


def test_a_grid_of_large_negative_weights_matches_too():
    # Weights that can drive sums below zero exercise the clipped (all-zero, uniform) rows of the blend.
    probs, y = members(5, n_members=4, n_rows=300, n_classes=4)
    grid = (-2.0, -1.0, -0.3, 0.5, 1.0, 3.0)
    names = ["a", "b", "c", "d"]
    weights, path = hill_climb(probs, y, names, grid=grid)
    assert (weights, [(s.member, s.weight, s.score) for s in path]) == plain_climb(probs, y, names, grid=grid)
