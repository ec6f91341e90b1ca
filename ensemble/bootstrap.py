"""The paired bootstrap: a confidence interval on the macro-F1 gain of cross-fitted predictions over the
cross-fitted best member, rows or whole groups resampled, every method on the same resamples.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ensemble._checks import as_labels
from ensemble._math import one_blas_thread
from ensemble.metrics import f1_from_counts, label_positions, resolve_labels


def _group_codes(groups: np.ndarray | Sequence, n_rows: int) -> np.ndarray:
    """Group labels (any hashable values) as codes 0..G-1, one per row."""
    arr = np.asarray(groups)
    if arr.shape != (n_rows,):
        raise ValueError(f"groups must have one value per row ({n_rows}); got shape {arr.shape}")
    return np.unique(arr.astype(str), return_inverse=True)[1].ravel().astype(np.int64)


# Patterns seen at least this often are drawn with a multinomial (one binomial per
# pattern and resample); rarer ones by drawing rows (one integer per drawn row),
# whichever is cheaper. Both are exact; see `_resample_pattern_counts`.
_COMMON_PATTERN = 8


def _resample_pattern_counts(pattern: np.ndarray, n_patterns: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Counts [n_boot, n_patterns] of each row pattern in `n_boot` resamples of all rows with replacement.

    Drawing n rows with replacement and counting their patterns is a
    multinomial(n, pattern frequencies). It is sampled exactly in two parts: a
    binomial splits each resample between common and rare patterns; common
    patterns then get a multinomial, and the rare part draws that many rows
    uniformly among the rows of rare patterns.
    """
    n_rows = len(pattern)
    counts = np.bincount(pattern, minlength=n_patterns)
    common = counts >= _COMMON_PATTERN
    n_common = int(counts[common].sum())
    draws = np.zeros((n_boot, n_patterns))
    in_common = rng.binomial(n_rows, n_common / n_rows, size=n_boot)
    if n_common:
        draws[:, common] = rng.multinomial(in_common, counts[common] / n_common)
    rare_rows = pattern[~common[pattern]]
    if len(rare_rows):
        in_rare = n_rows - in_common
        picked = rare_rows[rng.integers(0, len(rare_rows), size=int(in_rare.sum()))]
        resample = np.repeat(np.arange(n_boot), in_rare)
        draws += np.bincount(resample * n_patterns + picked, minlength=n_boot * n_patterns).reshape(n_boot, n_patterns)
    return draws


def _resample_group_counts(codes: np.ndarray, pattern: np.ndarray, n_patterns: int, n_boot: int,
                           rng: np.random.Generator) -> np.ndarray:
    """Counts [n_boot, n_patterns] of each row pattern when whole groups are drawn with replacement.

    A resample takes G groups uniformly with replacement (G = number of groups);
    each drawn group brings all its rows, so the pattern counts are the group
    draw counts times the groups' own pattern counts.
    """
    n_groups = int(codes.max()) + 1
    per_group = np.zeros((n_groups, n_patterns))
    np.add.at(per_group, (codes, pattern), 1.0)
    group_draws = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot).astype(np.float64)
    with one_blas_thread():
        return group_draws @ per_group


def _row_patterns(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Number each distinct row of the given label columns: (pattern per row, first row of each pattern)."""
    pattern = np.zeros(len(columns[0]), dtype=np.int64)
    for col in columns:
        # Re-number after every column so the combined code never overflows.
        _, pattern = np.unique(pattern * (int(col.max()) + 1) + col, return_inverse=True)
        pattern = pattern.ravel()
    _, first = np.unique(pattern, return_index=True)
    return pattern, first


def _class_columns(pos: np.ndarray, y_pos: np.ndarray, first: np.ndarray, n_lab: int) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """One-hot [patterns, classes] of one prediction column, and of its correct predictions."""
    n_patterns = len(first)
    p, t = pos[first], y_pos[first]
    predicted = np.zeros((n_patterns, n_lab + 1), dtype=np.float32)
    predicted[np.arange(n_patterns), p] = 1.0
    correct = predicted * (p == t)[:, None]
    return predicted[:, :n_lab], correct[:, :n_lab]


def _design(y_pos: np.ndarray, base_pos: np.ndarray, method_pos: list[np.ndarray], first: np.ndarray,
            n_lab: int) -> np.ndarray:
    """[patterns, classes * (2 + 2 methods)]: true-class, then (predicted, correct) per prediction column,
    so pattern counts times this matrix give every F1's class counts at once."""
    blocks = [_class_columns(y_pos, y_pos, first, n_lab)[0], *_class_columns(base_pos, y_pos, first, n_lab)]
    for pos in method_pos:
        blocks += _class_columns(pos, y_pos, first, n_lab)
    return np.concatenate(blocks, axis=1)


def _all_f1(draws: np.ndarray, design: np.ndarray, n_lab: int, dtype: type) -> np.ndarray:
    """Macro F1 [1 + methods, resamples] from pattern counts [resamples, patterns]: baseline first."""
    stats = (draws.astype(dtype) @ design.astype(dtype)).astype(np.float64)
    n_true = stats[:, :n_lab]
    return np.stack([f1_from_counts(n_true, stats[:, s: s + n_lab], stats[:, s + n_lab: s + 2 * n_lab])
                     for s in range(n_lab, stats.shape[1], 2 * n_lab)])


def _draws(pattern: np.ndarray, n_patterns: int, n_boot: int, seed: int, groups: np.ndarray | None) -> np.ndarray:
    """Pattern counts [n_boot, patterns] of the resamples: rows, or whole groups when there are groups."""
    rng = np.random.default_rng(seed)
    codes = None if groups is None else _group_codes(groups, len(pattern))
    if codes is None or codes.max() + 1 == len(pattern):
        return _resample_pattern_counts(pattern, n_patterns, n_boot, rng)
    return _resample_group_counts(codes, pattern, n_patterns, n_boot, rng)


def _gain_summary(point_gain: float, gains: np.ndarray, level: float) -> dict[str, float | bool | str]:
    alpha = (1 - level) / 2
    low, high = np.quantile(gains, [alpha, 1 - alpha])
    return {"gain": float(point_gain), "low": float(low), "high": float(high),
            "excludes_zero": bool(low > 0 or high < 0), "verdict": verdict(float(low), float(high))}


def _checked(y: np.ndarray, n_boot: int, level: float) -> np.ndarray:
    y = as_labels(y)
    if len(y) == 0:
        raise ValueError("no rows to bootstrap")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1; got {n_boot}")
    return y


def paired_bootstrap_gains(
    y: np.ndarray,
    preds: Mapping[str, np.ndarray],
    pred_best_member: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    labels: Sequence[int] | None = None,
    level: float = 0.95,
    groups: np.ndarray | None = None,
) -> dict[str, dict[str, float | bool | str]]:
    """`paired_bootstrap_gain` for several prediction vectors at once, on the SAME resamples.

    With `groups`, it is a cluster bootstrap: each resample draws whole groups
    with replacement (as many as there are groups), because rows of one group
    are correlated and resampling them one by one makes the interval too narrow.

    All vectors and the baseline are resampled with the same rows, so their
    gains are directly comparable. Only the joint pattern (true label, baseline
    prediction, each method's prediction) of a row matters to any of the F1
    scores, so the resampling draws pattern counts (see
    `_resample_pattern_counts`) and every F1 is computed from class counts with
    one matrix product. Because the patterns are joint, a method's interval can
    differ by Monte Carlo noise depending on which other methods share the call.

    Parameters
    ----------
    y, pred_best_member : ndarray of int, shape (n_rows,)
        True labels and the baseline's labels.
    preds : mapping of str to ndarray of int, each shape (n_rows,)
        Each method's (cross-fitted) labels.
    n_boot, seed, labels, level, groups
        Resamples, seed, classes averaged over (default: those present), level, group per row (n_rows,).

    Returns
    -------
    dict of str to dict
        Per method: gain, low, high, excludes_zero, verdict (see `paired_bootstrap_gain`).
    """
    y = _checked(y, n_boot, level)
    base = as_labels(pred_best_member, len(y), "pred_best_member")
    methods = {name: as_labels(pred, len(y), f"predictions of {name!r}") for name, pred in preds.items()}
    lab = resolve_labels(y, np.unique(np.concatenate([y, base, *methods.values()])), labels)
    # Positions in `lab`; values outside it get position len(lab), which no class column counts.
    y_pos, base_pos = label_positions(y, lab), label_positions(base, lab)
    method_pos = [label_positions(pred, lab) for pred in methods.values()]
    pattern, first = _row_patterns([y_pos, base_pos, *method_pos])
    design = _design(y_pos, base_pos, method_pos, first, len(lab))
    # float32 products are exact for counts below 2**24.
    dtype = np.float32 if len(y) < 2**24 else np.float64
    draws = _draws(pattern, len(first), n_boot, seed, groups)
    with one_blas_thread():
        point = _all_f1(np.bincount(pattern, minlength=len(first))[None].astype(np.float64), design, len(lab),
                        dtype)[:, 0]
        boot = _all_f1(draws, design, len(lab), dtype)
    return {name: _gain_summary(point[i] - point[0], boot[i] - boot[0], level)
            for i, name in enumerate(methods, start=1)}


VERDICTS = ("better", "worse", "no evidence")


def verdict(low: float, high: float) -> str:
    """What a gain interval says: `better` (it lies above zero), `worse` (below zero) or `no evidence`."""
    return "better" if low > 0 else "worse" if high < 0 else "no evidence"


def paired_bootstrap_gain(
    y: np.ndarray,
    pred_ensemble: np.ndarray,
    pred_best_member: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    labels: Sequence[int] | None = None,
    level: float = 0.95,
    groups: np.ndarray | None = None,
) -> dict[str, float | bool | str]:
    """Macro-F1 gain of the ensemble over the best member, with a paired percentile bootstrap CI.

    Both prediction vectors are scored on the same resampled rows (drawn with
    replacement, `n_boot` times, seeded). `labels` are the classes averaged over
    (default: those present, as sklearn). Returns {gain, low, high,
    excludes_zero, verdict}: the full-sample gain, the `level` interval of the resampled
    gains, whether that interval excludes 0, and what that means (`better`, `worse`, `no evidence`). With `groups`, whole groups
    are resampled (cluster bootstrap).

    Parameters
    ----------
    y : ndarray of int, shape (n_rows,)
    pred_ensemble, pred_best_member : ndarray of int, shape (n_rows,)
    n_boot, seed, labels, level, groups
        As in `paired_bootstrap_gains`.

    Returns
    -------
    dict
        gain, low, high, excludes_zero, verdict.
    """
    return paired_bootstrap_gains(y, {"ensemble": pred_ensemble}, pred_best_member, n_boot, seed, labels, level,
                                  groups)[
        "ensemble"
    ]
