"""Temperature scaling of cached member probabilities (Guo et al. 2017).

Members store probabilities, not logits; log p equals the logits up to a
per-row constant, which softmax ignores, so softmax(log p / T) is exactly the
temperature-scaled output.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ensemble._checks import LOG_EPS, as_labels, check_names
from ensemble._math import log_probs, softmax_inplace

# T in [0.05, 20] covers everything from badly under- to badly over-confident
# members; searching log T makes the problem symmetric around T = 1.
LOG_T_BOUNDS = (float(np.log(0.05)), float(np.log(20.0)))


def temperature_nll(log_p: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of softmax(log_p / T) at the true labels."""
    z = log_p / temperature
    top = z.max(axis=1)
    lse = np.log(np.exp(z - top[:, None]).sum(axis=1)) + top
    return float(np.mean(lse - z[np.arange(len(y)), y]))


def _nll_curve(probs: np.ndarray, y: np.ndarray) -> Callable[[float], float]:
    """A fast NLL(log T) of one member's probs [rows, classes] for the optimiser.

    Dividing each row by its max makes every log <= 0 (no overflow, no per-call
    max); float32 log/exp are ~2-6x faster than float64 and move the optimum by
    far less than the optimiser's tolerance. Sums accumulate in float64.
    """
    p32 = np.maximum(probs, LOG_EPS).astype(np.float32)
    shifted = np.log(p32 / p32.max(axis=1, keepdims=True))
    mean_true = float(shifted[np.arange(len(y)), y].mean(dtype=np.float64))
    ones = np.ones(shifted.shape[1], dtype=np.float32)

    def nll_at(log_t: float) -> float:
        beta = float(np.exp(-log_t))
        row_sums = np.exp(shifted * np.float32(beta)) @ ones
        return float(np.log(row_sums).mean(dtype=np.float64)) - beta * mean_true

    return nll_at


def fit_temperature(probs: np.ndarray, y: np.ndarray, xatol: float = 1e-3) -> float:
    """Temperature T that minimises the validation NLL of one member's probs [rows, classes].

    T > 1 softens an over-confident member, T < 1 sharpens an under-confident one.
    The argmax, and hence accuracy, never changes. The search runs on log T
    within [0.05, 20] with scipy's bounded scalar minimiser.

    Parameters
    ----------
    probs : ndarray, shape (n_rows, n_classes)
        One member.
    y : ndarray of int, shape (n_rows,)
        True labels.
    xatol : float
        Tolerance on log T.

    Returns
    -------
    float
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"fit_temperature expects one member's probs [rows, classes]; got shape {probs.shape}")
    y = as_labels(y, probs.shape[0])
    if len(y) == 0:
        raise ValueError("cannot fit a temperature on zero rows")
    if y.max() >= probs.shape[1]:
        raise ValueError(f"label {int(y.max())} is out of range for {probs.shape[1]} classes")
    # lazy: scipy.optimize is slow to import and only a fit needs it; --help reads the rule table
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(
        _nll_curve(probs, y),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": xatol},
    )
    return float(np.exp(result.x))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T) over the last axis; works for [rows, classes] or [members, rows, classes].

    Parameters
    ----------
    probs : ndarray, shape (n_rows, n_classes) or (n_members, n_rows, n_classes)
    temperature : float

    Returns
    -------
    ndarray, same shape as probs
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive; got {temperature}")
    z = log_probs(probs)
    z /= temperature
    return softmax_inplace(z)


def fit_temperatures(probs: np.ndarray, y: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """One temperature per member of probs [members, rows, classes], keyed by member name.

    Parameters
    ----------
    probs : ndarray, shape (n_members, n_rows, n_classes)
        Member probabilities, members in the order of `names`.
    y : ndarray of int, shape (n_rows,)
        True labels.
    names : sequence of str, length n_members
        Member names.

    Returns
    -------
    dict of str to float
    """
    names = check_names(names, np.shape(probs)[0])
    return {name: fit_temperature(p, y) for name, p in zip(names, probs)}


def apply_temperatures(
    probs: np.ndarray, names: Sequence[str], temperatures: Mapping[str, float]
) -> np.ndarray:
    """Scale each member by its own temperature; members without one keep T = 1 (untouched)."""
    names = check_names(names, np.shape(probs)[0])
    out = np.array(probs, dtype=np.float64, copy=True)
    for i, name in enumerate(names):
        t = temperatures.get(name)
        if t is not None and t != 1.0:
            out[i] = apply_temperature(probs[i], t)
    return out
