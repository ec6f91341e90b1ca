"""Honest estimates of what an ensemble gains over its best member.

Anything fitted on validation rows (temperatures, weights, a selection, even the
choice of the "best" member) looks better on those rows than it will on new
data. Cross-fitting predicts every validation row with a method fitted on the
other folds only, and the paired bootstrap puts a confidence interval on the
macro-F1 difference between two such prediction vectors.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

from ensemble._checks import as_labels, as_probs, check_names
from ensemble._math import one_blas_thread
from ensemble.metrics import f1_from_counts, label_positions, macro_f1_many, resolve_labels

# predictor(probs[members, rows, classes]) -> labels[rows]
Predictor = Callable[[np.ndarray], np.ndarray]
# method(train_probs, train_y, names) -> predictor; it sees the training rows only.
Method = Callable[[np.ndarray, np.ndarray, list[str]], Predictor]
Folds = list[tuple[np.ndarray, np.ndarray]]


def make_folds(y: np.ndarray, n_splits: int = 5, seed: int = 0, groups: np.ndarray | None = None) -> Folds:
    """(train_rows, test_rows) pairs covering every row once as a test row.

    With `groups` (the split file's `group` column: the rows of one person), a
    group never spans two folds (StratifiedGroupKFold), because its rows are
    correlated and a method fitted on some of them would be scored on their
    near-copies. Without groups: stratified when every class has at least
    `n_splits` rows; otherwise plain shuffled KFold, because StratifiedKFold
    cannot spread a tiny class.
    """
    y = as_labels(y)
    if n_splits < 2:
        raise ValueError(f"n_splits must be at least 2; got {n_splits}")
    if len(y) < n_splits:
        raise ValueError(f"cannot cross-fit {len(y)} rows in {n_splits} folds")
    _, class_counts = np.unique(y, return_counts=True)
    if groups is not None:
        groups = _group_codes(groups, len(y))
        n_groups = int(groups.max()) + 1
        if n_groups < n_splits:
            raise ValueError(f"cannot cross-fit {n_groups} groups in {n_splits} folds")
        if n_groups < len(y):
            # GroupKFold is deterministic (it balances fold sizes); StratifiedGroupKFold shuffles with the seed.
            splitter = (StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
                        if class_counts.min() >= n_splits else GroupKFold(n_splits=n_splits))
            return [(train, test) for train, test in splitter.split(np.zeros(len(y)), y, groups)]
        # Every row its own group: the plain folds below are the same thing, and keep their old seeds.
    if class_counts.min() >= n_splits:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(train, test) for train, test in splitter.split(np.zeros(len(y)), y)]


def _group_codes(groups: np.ndarray | Sequence, n_rows: int) -> np.ndarray:
    """Group labels (any hashable values) as codes 0..G-1, one per row."""
    arr = np.asarray(groups)
    if arr.shape != (n_rows,):
        raise ValueError(f"groups must have one value per row ({n_rows}); got shape {arr.shape}")
    return np.unique(arr.astype(str), return_inverse=True)[1].ravel().astype(np.int64)


def resampling_scheme(groups: np.ndarray | None, n_rows: int) -> str:
    """How rows are grouped for cross-fitting and the bootstrap, in words, for tables and reports."""
    if groups is None:
        return "rows (no groups known)"
    n_groups = int(_group_codes(groups, n_rows).max()) + 1
    if n_groups == n_rows:
        return f"rows (every one of the {n_rows} rows is its own group)"
    return f"groups ({n_groups} groups over {n_rows} rows: grouped folds, cluster bootstrap)"


def crossfit_many(
    methods: Mapping[str, Method],
    probs: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    folds: Folds,
) -> dict[str, np.ndarray]:
    """Cross-fitted labels of several methods on shared folds (each fold is sliced once)."""
    probs = as_probs(probs)
    names = check_names(names, probs.shape[0])
    y = as_labels(y, probs.shape[1])
    folds = list(folds)
    for train, test in folds:
        if np.intersect1d(train, test).size:
            raise ValueError("a fold's training and test rows overlap")

    def fit_fold(fold: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
        train, test = fold
        train_probs, test_probs, train_y = probs[:, train], probs[:, test], y[train]
        return {key: np.asarray(method(train_probs, train_y, list(names))(test_probs))
                for key, method in methods.items()}

    # Folds are independent and numpy releases the GIL in the heavy loops, so threads use every core.
    with ThreadPoolExecutor(max_workers=max(1, min(len(folds), os.cpu_count() or 1))) as pool:
        fold_labels = list(pool.map(fit_fold, folds))
    out: dict[str, np.ndarray] = {}
    for (_, test), labels_by_key in zip(folds, fold_labels):
        for key, labels in labels_by_key.items():
            if labels.ndim not in (1, 2) or labels.shape[-1] != len(test):
                raise ValueError(f"method {key!r} returned labels of shape {labels.shape} for {len(test)} rows")
            if key not in out:
                out[key] = np.full(labels.shape[:-1] + (len(y),), -1, dtype=np.int64)
            out[key][..., test] = labels
    missing = [key for key, labels in out.items() if (labels < 0).any()]
    if missing:
        raise ValueError(f"the folds do not cover every row (methods {missing})")
    return out


def crossfit_predictions(
    method: Method,
    probs: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    n_splits: int = 5,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Labels for every row, each predicted by `method` fitted on the OTHER folds only.

    `method(train_probs, train_y, names)` must return a predictor
    `predictor(probs) -> labels`. Folds come from `make_folds(y, n_splits, seed, groups)`.
    """
    folds = make_folds(y, n_splits, seed, groups)
    return crossfit_many({"method": method}, probs, y, names, folds)["method"]


def choose_best_member(probs: np.ndarray, y: np.ndarray, names: Sequence[str]) -> str:
    """Name of the member with the best macro F1 on the given rows; ties go to the first name."""
    probs = as_probs(probs)
    names = check_names(names, probs.shape[0])
    y = as_labels(y, probs.shape[1])
    scores = macro_f1_many(y, probs.argmax(axis=2), probs.shape[2])
    by_name = np.argsort(names)
    return names[int(by_name[np.argmax(scores[by_name])])]


def best_member_method(probs: np.ndarray, y: np.ndarray, names: list[str]) -> Predictor:
    """Pick the best member on the rows it is given (see `choose_best_member`); predict with its argmax.

    Cross-fitted, this is the honest baseline: the best member is chosen on the
    training folds, never on the rows it is scored on.
    """
    chosen = list(names).index(choose_best_member(probs, y, names))

    def predict(test_probs: np.ndarray) -> np.ndarray:
        return test_probs[chosen].argmax(axis=1).astype(np.int64)

    return predict


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
    y : ndarray of int, shape (n_rows,)
    preds : mapping of str to ndarray of int, each shape (n_rows,)
        Each method's (cross-fitted) labels.
    pred_best_member : ndarray of int, shape (n_rows,)
        The baseline's labels.
    n_boot, seed, labels, level
        Resamples, their seed, the classes averaged over (default: those present) and the interval's level.
    groups : ndarray, shape (n_rows,), optional
        One group label per row: resample whole groups.

    Returns
    -------
    dict of str to dict
        Per method: gain, low, high, excludes_zero, verdict (see `paired_bootstrap_gain`).
    """
    y = as_labels(y)
    if len(y) == 0:
        raise ValueError("no rows to bootstrap")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1; got {n_boot}")
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
    """
    return paired_bootstrap_gains(y, {"ensemble": pred_ensemble}, pred_best_member, n_boot, seed, labels, level,
                                  groups)[
        "ensemble"
    ]
