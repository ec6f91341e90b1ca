"""Grouped cross-fitting and the cluster bootstrap: correlated rows (one person's images) count once."""
from __future__ import annotations

import numpy as np

from ensemble.compare import compare
from ensemble.honest import make_folds, paired_bootstrap_gain, resampling_scheme
from ensemble.metrics import macro_f1


def population(rng, n_groups, n_classes=3, p_a=0.75, p_b=0.6):
    """One label per group; member a is right with probability p_a, b with p_b, independently."""
    y = rng.integers(0, n_classes, n_groups)
    wrong = lambda: (y + rng.integers(1, n_classes, n_groups)) % n_classes  # noqa: E731
    a = np.where(rng.random(n_groups) < p_a, y, wrong())
    b = np.where(rng.random(n_groups) < p_b, y, wrong())
    return y, a, b


def duplicated(arrays, copies):
    return [np.repeat(arr, copies) for arr in arrays]


def test_row_bootstrap_is_too_narrow_on_duplicated_rows_and_the_cluster_bootstrap_is_not() -> None:
    rng = np.random.default_rng(0)
    big_y, big_a, big_b = population(rng, 200_000)
    true_gain = macro_f1(big_y, big_a) - macro_f1(big_y, big_b)
    n_groups, copies, n_sims = 60, 10, 150
    groups = np.repeat(np.arange(n_groups), copies)
    covered = {"rows": 0, "groups": 0}
    widths = {"rows": [], "groups": [], "unique": []}
    for sim in range(n_sims):
        y, a, b = population(rng, n_groups)
        dy, da, db = duplicated([y, a, b], copies)
        row = paired_bootstrap_gain(dy, da, db, n_boot=400, seed=sim)
        cluster = paired_bootstrap_gain(dy, da, db, n_boot=400, seed=sim, groups=groups)
        unique = paired_bootstrap_gain(y, a, b, n_boot=400, seed=sim)  # the honest answer: 60 independent rows
        for key, out in (("rows", row), ("groups", cluster)):
            covered[key] += out["low"] <= true_gain <= out["high"]
            widths[key].append(out["high"] - out["low"])
        widths["unique"].append(unique["high"] - unique["low"])
        assert cluster["gain"] == row["gain"] == unique["gain"]  # duplicating rows does not move macro F1
    # Ten copies of each row make the row bootstrap sqrt(10) ~ 3x too narrow: it misses the truth often.
    assert covered["rows"] / n_sims < 0.7
    assert covered["groups"] / n_sims > 0.85
    assert np.mean(widths["rows"]) < 0.5 * np.mean(widths["groups"])
    assert abs(np.mean(widths["groups"]) / np.mean(widths["unique"]) - 1) < 0.15


def test_grouped_folds_keep_each_group_in_one_fold() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat([f"person{i}" for i in range(40)], 5)
    y = rng.integers(0, 3, len(groups))
    folds = make_folds(y, 5, seed=0, groups=groups)
    seen = np.zeros(len(y), dtype=int)
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        seen[test] += 1
    assert (seen == 1).all()
    # Singleton groups are plain rows: the same folds as without groups.
    singles = np.arange(len(y)).astype(str)
    for (_, te1), (_, te2) in zip(make_folds(y, 5, 0, singles), make_folds(y, 5, 0)):
        assert np.array_equal(te1, te2)


def test_compare_uses_groups_and_says_so() -> None:
    rng = np.random.default_rng(2)
    n_groups, copies = 50, 4
    y = np.repeat(rng.integers(0, 3, n_groups), copies)
    groups = np.repeat(np.arange(n_groups), copies)
    members = {f"m{i}": rng.dirichlet(np.ones(3), size=len(y)) + np.eye(3)[y] * 0.3 * i for i in range(3)}
    members = {k: v / v.sum(1, keepdims=True) for k, v in members.items()}
    grouped = compare(members, y, 3, n_boot=200, groups=groups)
    plain = compare(members, y, 3, n_boot=200)
    assert grouped.scheme.startswith("groups (50 groups over 200 rows")
    assert plain.scheme.startswith("rows")
    assert resampling_scheme(np.arange(10), 10).startswith("rows (every one")
    g = grouped.table.set_index("method")
    p = plain.table.set_index("method")
    width = lambda t: (t["ci_high"] - t["ci_low"]).dropna().mean()  # noqa: E731
    assert width(g) > width(p)
