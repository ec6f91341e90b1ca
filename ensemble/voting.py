"""Fixed voting rules over cached member probabilities [members, rows, classes].

Every rule breaks ties towards the LOWEST class index, because that is what
`np.argmax` does and what `sklearn.ensemble.VotingClassifier` does.

Member order never changes a result: the weighted sums below always run over
the members in a canonical order derived from their weights and contents, so
floating-point rounding (and therefore near-tie breaking) is the same for any
permutation of the first axis.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ensemble._checks import as_probs, as_weights
from ensemble._math import log_probs, softmax_inplace

Weights = Sequence[float] | np.ndarray | None


@functools.lru_cache(maxsize=4)
def _fingerprint_vector(size: int) -> np.ndarray:
    # Fixed pseudo-random weights: equal dot products for different members are
    # practically impossible, and the vector is the same in every process.
    vec = np.random.default_rng(20040704).standard_normal(size)
    vec.flags.writeable = False
    return vec


def _canonical_order(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Member order sorted by (weight, fingerprint of the member's `values`).

    Identical members get identical keys, and swapping identical members cannot
    change a sum, so any input order yields the same summation sequence. Two
    different members with equal weight and equal fingerprint would fall back
    to input order, which could only move results by rounding.
    """
    if len(np.unique(weights)) == len(weights):
        return np.argsort(weights, kind="stable")
    flat = values.reshape(values.shape[0], -1).astype(np.float64, copy=False)
    # einsum runs single-threaded: BLAS worker threads cost more than this
    # 1 ms product on a busy machine.
    fingerprint = np.einsum("mk,k->m", flat, _fingerprint_vector(flat.shape[1]))
    # np.lexsort sorts by the LAST key first.
    return np.lexsort((fingerprint, weights))


def _total_weight(weights: np.ndarray) -> float:
    # Summed in sorted order so that the divisor, too, ignores member order.
    return float(np.sort(weights).sum())


def _weighted_sum(values: np.ndarray, weights: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Sum of weights[m] * values[m], accumulated in `order` without copying the stack."""
    acc = values[order[0]] * weights[order[0]]
    if (weights == 1.0).all():
        # x * 1.0 is exact, so skipping the products changes nothing but the time.
        for m in order[1:]:
            acc += values[m]
        return acc
    tmp = np.empty_like(acc)
    for m in order[1:]:
        np.multiply(values[m], weights[m], out=tmp)
        acc += tmp
    return acc


def vote_counts(probs: np.ndarray, weights: Weights = None) -> np.ndarray:
    """Weighted number of votes per class [rows, classes]; each member votes for its argmax.

    A class that no member votes for keeps its column (with 0 votes).

    Parameters
    ----------
    probs : ndarray, shape (n_members, n_rows, n_classes)
        Member probabilities.
    weights : sequence of float, length n_members, optional
        Non-negative member weights (default: equal).

    Returns
    -------
    ndarray, shape (n_rows, n_classes)
        Weighted votes per class.
    """
    probs = as_probs(probs)
    return _counts(probs, as_weights(weights, probs.shape[0]))


def _counts(probs: np.ndarray, w: np.ndarray) -> np.ndarray:
    _, n_rows, n_classes = probs.shape
    preds = probs.argmax(axis=2)  # ties inside a member also go to the lowest class
    # Only the votes matter here, so members are told apart by their votes.
    order = _canonical_order(preds, w)
    # One bincount over (row, class) bins replaces a per-row loop; flattening
    # member-major makes each bin accumulate its votes in the canonical order.
    bins = (preds[order] + (np.arange(n_rows) * n_classes)[None, :]).ravel()
    counts = np.bincount(bins, weights=np.repeat(w[order], n_rows), minlength=n_rows * n_classes)
    return counts.reshape(n_rows, n_classes)


def vote_shares(probs: np.ndarray, weights: Weights = None) -> np.ndarray:
    """Vote counts divided by the total weight: a [rows, classes] table that sums to 1 per row.

    Parameters
    ----------
    probs : ndarray, shape (n_members, n_rows, n_classes)
        Member probabilities.
    weights : sequence of float, length n_members, optional
        Non-negative member weights (default: equal).

    Returns
    -------
    ndarray, shape (n_rows, n_classes)
        Vote shares; each row sums to 1.
    """
    return hard_vote_with_shares(probs, weights)[1]


def hard_vote_with_shares(probs: np.ndarray, weights: Weights = None) -> tuple[np.ndarray, np.ndarray]:
    """`hard_vote` labels together with the vote shares; labels come from the raw counts, so a
    rounding collision in the division can never break a tie differently.

    Parameters
    ----------
    probs : ndarray, shape (n_members, n_rows, n_classes)
        Member probabilities.
    weights : sequence of float, length n_members, optional
        Non-negative member weights (default: equal).

    Returns
    -------
    labels : ndarray of int, shape (n_rows,)
        Argmax, ties to the lowest class.
    shares : ndarray, shape (n_rows, n_classes)
    """
    probs = as_probs(probs)
    w = as_weights(weights, probs.shape[0])
    counts = _counts(probs, w)
    return counts.argmax(axis=1).astype(np.int64), counts / _total_weight(w)


def hard_vote(probs: np.ndarray, weights: Weights = None) -> np.ndarray:
    """Weighted majority vote of the members' argmax predictions.

    Each member casts one vote (of its weight) for its most probable class; the
    class with the largest weighted count wins. Ties go to the LOWEST class
    index, exactly as `VotingClassifier(voting="hard")`, which computes
    `np.argmax(np.bincount(predictions, weights=weights))`. Votes are counts,
    never the per-class maximum of probabilities.

    Returns int64 labels [rows].

    Parameters
    ----------
    probs : ndarray, shape (n_members, n_rows, n_classes)
        Member probabilities.
    weights : sequence of float, length n_members, optional
        Non-negative member weights (default: equal).

    Returns
    -------
    ndarray of int, shape (n_rows,)
    """
    return vote_counts(probs, weights).argmax(axis=1).astype(np.int64)


def soft_vote(probs: np.ndarray, weights: Weights = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted arithmetic mean of the members' probabilities, as `VotingClassifier(voting="soft")`.

    Returns (labels [rows] int64, mean_probs [rows, classes]); argmax ties go to
    the lowest class index.

    Parameters
    ----------
    probs : ndarray, shape (n_members, n_rows, n_classes)
        Member probabilities.
    weights : sequence of float, length n_members, optional
        Non-negative member weights (default: equal).

    Returns
    -------
    labels : ndarray of int, shape (n_rows,)
        Argmax, ties to the lowest class.
    mean_probs : ndarray, shape (n_rows, n_classes)
    """
    probs = as_probs(probs)
    w = as_weights(weights, probs.shape[0])
    mean = _weighted_sum(probs, w, _canonical_order(probs, w)) / _total_weight(w)
    return mean.argmax(axis=1).astype(np.int64), mean


def _log_pool(log_scores: np.ndarray, probs: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = _weighted_sum(log_scores, w, _canonical_order(probs, w))
    mean /= _total_weight(w)
    # Labels come from the pooled scores, not the softmax output, so that a
    # rounding collision after exp cannot break a tie differently.
    labels = mean.argmax(axis=1).astype(np.int64)
    return labels, softmax_inplace(mean)


def geometric_vote(probs: np.ndarray, weights: Weights = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted geometric mean of probabilities, renormalised: softmax(sum_m w_m log p_m / sum w).

    A member that gives a class (near) zero probability vetoes it; probabilities
    are clipped at 1e-12 so the veto is strong but finite. Argmax ties go to the
    lowest class index. Returns (labels, pooled_probs).

    Parameters
    ----------
    probs : ndarray, shape (n_members, n_rows, n_classes)
        Member probabilities.
    weights : sequence of float, length n_members, optional
        Non-negative member weights (default: equal).

    Returns
    -------
    labels : ndarray of int, shape (n_rows,)
        Argmax, ties to the lowest class.
    pooled_probs : ndarray, shape (n_rows, n_classes)
    """
    probs = as_probs(probs)
    w = as_weights(weights, probs.shape[0])
    return _log_pool(log_probs(probs), probs, w)


def logit_vote(probs: np.ndarray, weights: Weights = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean of member logits, renormalised with softmax.

    Members store probabilities, so their logits are recovered as log p, which
    equals the network's logits up to a per-row constant. Softmax removes that
    constant, so this rule gives exactly the result of `geometric_vote`; it is
    kept as its own name because the two are often assumed to differ, and a
    comparison table should show that they do not.

    Parameters
    ----------
    probs : ndarray, shape (n_members, n_rows, n_classes)
        Member probabilities.
    weights : sequence of float, length n_members, optional
        Non-negative member weights (default: equal).

    Returns
    -------
    labels : ndarray of int, shape (n_rows,)
        Argmax, ties to the lowest class.
    pooled_probs : ndarray, shape (n_rows, n_classes)
    """
    return geometric_vote(probs, weights)
