"""Honest estimates of what an ensemble gains over its best member.

Anything fitted on validation rows (temperatures, weights, a selection, even the
choice of the "best" member) looks better on those rows than it will on new
data. Cross-fitting predicts every validation row with a method fitted on the
other folds only, and the paired bootstrap puts a confidence interval on the
macro-F1 difference between two such prediction vectors.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from ensemble._checks import as_labels, as_probs, check_names
from ensemble.metrics import f1_from_counts, label_positions, macro_f1_many, resolve_labels

# predictor(probs[members, rows, classes]) -> labels[rows]
Predictor = Callable[[np.ndarray], np.ndarray]
# method(train_probs, train_y, names) -> predictor; it sees the training rows only.
Method = Callable[[np.ndarray, np.ndarray, list[str]], Predictor]
Folds = list[tuple[np.ndarray, np.ndarray]]


def make_folds(y: np.ndarray, n_splits: int = 5, seed: int = 0) -> Folds:
    """(train_rows, test_rows) pairs covering every row once as a test row.

    Stratified when every class has at least `n_splits` rows; otherwise plain
    shuffled KFold, because StratifiedKFold cannot spread a tiny class.
    """
    y = as_labels(y)
    if n_splits < 2:
        raise ValueError(f"n_splits must be at least 2; got {n_splits}")
    if len(y) < n_splits:
        raise ValueError(f"cannot cross-fit {len(y)} rows in {n_splits} folds")
    _, class_counts = np.unique(y, return_counts=True)
    if class_counts.min() >= n_splits:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(train, test) for train, test in splitter.split(np.zeros(len(y)), y)]


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
    out = {key: np.full(len(y), -1, dtype=np.int64) for key in methods}
    for train, test in folds:
        if np.intersect1d(train, test).size:
            raise ValueError("a fold's training and test rows overlap")
        train_probs, test_probs, train_y = probs[:, train], probs[:, test], y[train]
        for key, method in methods.items():
            out[key][test] = method(train_probs, train_y, list(names))(test_probs)
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
) -> np.ndarray:
    """Labels for every row, each predicted by `method` fitted on the OTHER folds only.

    `method(train_probs, train_y, names)` must return a predictor
    `predictor(probs) -> labels`. Folds come from `make_folds(y, n_splits, seed)`.
    """
    folds = make_folds(y, n_splits, seed)
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


def paired_bootstrap_gain(
    y: np.ndarray,
    pred_ensemble: np.ndarray,
    pred_best_member: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    labels: Sequence[int] | None = None,
    level: float = 0.95,
) -> dict[str, float | bool]:
    """Macro-F1 gain of the ensemble over the best member with a paired percentile bootstrap CI.

    Both prediction vectors are resampled with the same rows. Only the triple
    (true, ensemble, member) of a row matters to either F1, so rather than
    resampling row indices we draw, per bootstrap, how many rows of each
    distinct triple are taken: a multinomial with the triples' frequencies,
    which is the same distribution as drawing n rows with replacement and
    costs (distinct triples) instead of (rows) per resample.

    `labels` are the classes averaged over (default: those present, as sklearn).
    Returns {gain, low, high, excludes_zero}.
    """
    y = as_labels(y)
    pe = as_labels(pred_ensemble, len(y), "pred_ensemble")
    pb = as_labels(pred_best_member, len(y), "pred_best_member")
    if len(y) == 0:
        raise ValueError("no rows to bootstrap")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    lab = resolve_labels(y, np.union1d(pe, pb), labels)
    width = len(lab) + 1  # the extra position collects values outside `labels`
    yi, ei, bi = (label_positions(v, lab) for v in (y, pe, pb))
    triples, counts = np.unique((yi * width + ei) * width + bi, return_counts=True)
    ty, te, tb = triples // (width * width), (triples // width) % width, triples % width

    def onehot(pos: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
        m = np.zeros((len(triples), width))
        m[np.arange(len(triples)), pos] = 1.0 if keep is None else keep
        return m[:, : len(lab)]

    true_m, ens_m, mem_m = onehot(ty), onehot(te), onehot(tb)
    ens_tp, mem_tp = onehot(te, (te == ty).astype(float)), onehot(tb, (tb == ty).astype(float))

    def gains(draws: np.ndarray) -> np.ndarray:
        n_true = draws @ true_m
        return f1_from_counts(n_true, draws @ ens_m, draws @ ens_tp) - f1_from_counts(
            n_true, draws @ mem_m, draws @ mem_tp
        )

    point = float(gains(counts[None].astype(float))[0])
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(y), counts / len(y), size=n_boot).astype(float)
    alpha = (1 - level) / 2
    low, high = np.quantile(gains(draws), [alpha, 1 - alpha])
    return {
        "gain": point,
        "low": float(low),
        "high": float(high),
        "excludes_zero": bool(low > 0 or high < 0),
    }
