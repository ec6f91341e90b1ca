"""Fixed voting rules over cached member probabilities [members, rows, classes].

Every rule breaks ties towards the LOWEST class index, because that is what
`np.argmax` does and what `sklearn.ensemble.VotingClassifier` does.

Member order never changes a result: the weighted sums below always run over
the members in a canonical order derived from their weights and contents, so
floating-point rounding (and therefore near-tie breaking) is the same for any
permutation of the first axis.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import softmax

from ensemble._checks import LOG_EPS, as_probs, as_weights

Weights = Sequence[float] | np.ndarray | None


def _canonical_order(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Member order sorted by (weight, content fingerprints).

    Identical members get identical keys, and swapping identical members cannot
    change a sum, so any input order yields the same summation sequence. Two
    different members colliding on both fingerprints would fall back to input
    order, which can only move results by rounding.
    """
    flat = probs.reshape(probs.shape[0], -1)
    ramp = np.arange(1, flat.shape[1] + 1, dtype=np.float64)
    fp1 = flat @ np.sqrt(ramp)
    fp2 = flat @ np.cos(ramp)
    # np.lexsort sorts by the LAST key first.
    return np.lexsort((fp2, fp1, weights))


def _weighted_sum(values: np.ndarray, weights: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Sum of weights[m] * values[m], accumulated in `order` without copying the stack."""
    acc = values[order[0]] * weights[order[0]]
    tmp = np.empty_like(acc)
    for m in order[1:]:
        np.multiply(values[m], weights[m], out=tmp)
        acc += tmp
    return acc


def vote_counts(probs: np.ndarray, weights: Weights = None) -> np.ndarray:
    """Weighted number of votes per class [rows, classes]; each member votes for its argmax.

    A class that no member votes for keeps its column (with 0 votes).
    """
    probs = as_probs(probs)
    w = as_weights(weights, probs.shape[0])
    n_members, n_rows, n_classes = probs.shape
    order = _canonical_order(probs, w)
    preds = probs.argmax(axis=2)[order]  # ties inside a member also go to the lowest class
    # One bincount over (row, class) bins replaces a per-row loop; flattening
    # member-major makes each bin accumulate its votes in the canonical order.
    bins = (preds + (np.arange(n_rows) * n_classes)[None, :]).ravel()
    counts = np.bincount(bins, weights=np.repeat(w[order], n_rows), minlength=n_rows * n_classes)
    return counts.reshape(n_rows, n_classes)


def vote_shares(probs: np.ndarray, weights: Weights = None) -> np.ndarray:
    """Vote counts divided by the total weight: a [rows, classes] table that sums to 1 per row."""
    probs = as_probs(probs)
    w = as_weights(weights, probs.shape[0])
    return vote_counts(probs, w) / w.sum()


def hard_vote(probs: np.ndarray, weights: Weights = None) -> np.ndarray:
    """Weighted majority vote of the members' argmax predictions.

    Each member casts one vote (of its weight) for its most probable class; the
    class with the largest weighted count wins. Ties go to the LOWEST class
    index, exactly as `VotingClassifier(voting="hard")`, which computes
    `np.argmax(np.bincount(predictions, weights=weights))`. Votes are counts,
    never the per-class maximum of probabilities.

    Returns int64 labels [rows].
    """
    return vote_counts(probs, weights).argmax(axis=1).astype(np.int64)


def soft_vote(probs: np.ndarray, weights: Weights = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted arithmetic mean of the members' probabilities, as `VotingClassifier(voting="soft")`.

    Returns (labels [rows] int64, mean_probs [rows, classes]); argmax ties go to
    the lowest class index.
    """
    probs = as_probs(probs)
    w = as_weights(weights, probs.shape[0])
    mean = _weighted_sum(probs, w, _canonical_order(probs, w)) / w.sum()
    return mean.argmax(axis=1).astype(np.int64), mean


def _log_pool(log_scores: np.ndarray, probs: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = _weighted_sum(log_scores, w, _canonical_order(probs, w)) / w.sum()
    pooled = softmax(mean, axis=-1)
    # Labels come from the pooled scores, not the softmax output, so that a
    # rounding collision after exp cannot break a tie differently.
    return mean.argmax(axis=1).astype(np.int64), pooled


def geometric_vote(probs: np.ndarray, weights: Weights = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted geometric mean of probabilities, renormalised: softmax(sum_m w_m log p_m / sum w).

    A member that gives a class (near) zero probability vetoes it; probabilities
    are clipped at 1e-12 so the veto is strong but finite. Argmax ties go to the
    lowest class index. Returns (labels, pooled_probs).
    """
    probs = as_probs(probs)
    w = as_weights(weights, probs.shape[0])
    return _log_pool(np.log(np.maximum(probs, LOG_EPS)), probs, w)


def logit_vote(probs: np.ndarray, weights: Weights = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean of member logits, renormalised with softmax.

    Members store probabilities, so their logits are recovered as log p, which
    equals the network's logits up to a per-row constant. Softmax removes that
    constant, so this rule gives exactly the result of `geometric_vote`; it is
    kept as its own name because the two are often assumed to differ, and a
    comparison table should show that they do not.
    """
    return geometric_vote(probs, weights)
