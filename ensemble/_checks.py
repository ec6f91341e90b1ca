"""Input validation shared by the ensemble modules, so every entry point fails the same way."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# Probabilities are clipped here before taking logs: an exact 0 from a float32
# softmax would otherwise turn into -inf and poison means and NLLs.
LOG_EPS = 1e-12


def as_probs(probs: np.ndarray) -> np.ndarray:
    """Return `probs` as a float64 array [members, rows, classes] or raise ValueError."""
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 3:
        raise ValueError(
            f"probs must have shape [members, rows, classes]; got {arr.ndim} dimension(s) {arr.shape}"
        )
    if 0 in arr.shape:
        raise ValueError(f"probs must not be empty; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("probs contains NaN or infinite values")
    return arr


def as_weights(weights: Sequence[float] | np.ndarray | None, n_members: int) -> np.ndarray:
    """Return float64 weights of length `n_members` (ones when None) or raise ValueError."""
    if weights is None:
        return np.ones(n_members)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] != n_members:
        raise ValueError(f"weights must have one value per member ({n_members}); got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("weights must be finite")
    if (w < 0).any():
        raise ValueError(f"weights must be non-negative; got {w.tolist()}")
    if not (w > 0).any():
        raise ValueError("weights must not all be zero")
    return w


def as_labels(y: Sequence[int] | np.ndarray, n_rows: int | None = None, name: str = "y") -> np.ndarray:
    """Return int64 labels [rows] or raise ValueError."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{name} must hold integer class labels")
    arr = arr.astype(np.int64)
    if n_rows is not None and arr.shape[0] != n_rows:
        raise ValueError(f"{name} has {arr.shape[0]} rows but the probabilities have {n_rows}")
    if (arr < 0).any():
        raise ValueError(f"{name} must hold non-negative class indices")
    return arr


def check_names(names: Sequence[str], n_members: int) -> list[str]:
    """Member names must be unique strings, one per member, because they identify members."""
    names = list(names)
    if len(names) != n_members:
        raise ValueError(f"got {len(names)} names for {n_members} members")
    if len(set(names)) != len(names):
        raise ValueError(f"member names must be unique; got {names}")
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"member names must be str; got {name!r}")
    return names


def fit_inputs(probs: np.ndarray, names: Sequence[str], y) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The checked (probs, names, labels) of a rule fitted on validation rows; labels must index a class."""
    probs = as_probs(probs)
    names = check_names(names, probs.shape[0])
    y = as_labels(y, probs.shape[1])
    if y.max() >= probs.shape[2]:
        raise ValueError(f"label {int(y.max())} is out of range for {probs.shape[2]} classes")
    return probs, names, y


def stack_members(probs_by_name: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Stack a name->[rows, classes] mapping into (sorted names, probs[members, rows, classes]).

    Sorting by name gives every caller the same member order whatever order the
    mapping was built in, which is what makes name-level results order-free.
    """
    if not probs_by_name:
        raise ValueError("no members given")
    names = sorted(probs_by_name)
    check_names(names, len(names))
    arrays = [np.asarray(probs_by_name[n], dtype=np.float64) for n in names]
    for name, arr in zip(names, arrays):
        if arr.ndim != 2:
            raise ValueError(f"member {name!r}: probabilities must be [rows, classes]; got shape {arr.shape}")
        if arr.shape != arrays[0].shape:
            raise ValueError(
                f"member {name!r} has shape {arr.shape} but {names[0]!r} has {arrays[0].shape}"
            )
    return names, as_probs(np.stack(arrays))
