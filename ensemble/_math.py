"""Small numeric helpers shared by the voting and calibration code."""
from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from ensemble._checks import LOG_EPS


def log_probs(probs: np.ndarray) -> np.ndarray:
    """log p with p clipped at 1e-12, as a new float64 array (safe to modify in place)."""
    return np.log(np.maximum(np.asarray(probs, dtype=np.float64), LOG_EPS))


def softmax_inplace(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, overwriting `z`.

    Same result as scipy.special.softmax, without its temporaries and checks,
    which cost several times the arithmetic on [rows, 18] tables.
    """
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def one_blas_thread() -> threadpool_limits:
    """Context manager: run BLAS single-threaded.

    Our products are small (tables of [rows, 18], 10-parameter fits); extra
    BLAS threads only add hand-offs, and on a busy 2-core machine their
    spin-waiting made such products 10x slower. sklearn limits BLAS the same way.
    The limit is process-wide while the context is open.
    """
    return threadpool_limits(limits=1, user_api="blas")
