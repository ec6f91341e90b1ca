"""Early stopping semantics: patience, min_delta, direction, NaN."""
from __future__ import annotations

import math

import pytest

from members.early_stopping import EarlyStopping


def run(values, **kw):
    stopper = EarlyStopping(**kw)
    bests = []
    for epoch, value in enumerate(values, 1):
        bests.append(stopper.step(value, epoch))
        if stopper.should_stop:
            return stopper, bests, epoch
    return stopper, bests, None


def test_max_mode_tracks_best_and_stops_after_patience_bad_epochs():
    stopper, bests, stopped = run([0.5, 0.6, 0.55, 0.58, 0.59, 0.7], mode="max", patience=2)
    # epochs 3, 4, 5 do not beat 0.6; patience=2 allows two of them, the third stops
    assert bests == [True, True, False, False, False]
    assert stopped == 5
    assert stopper.best == 0.6 and stopper.best_epoch == 2


def test_patience_zero_stops_at_first_non_improvement():
    _, _, stopped = run([1.0, 0.9], mode="max", patience=0)
    assert stopped == 2


def test_min_mode():
    stopper, bests, _ = run([1.0, 0.8, 0.9, 0.7], mode="min", patience=5)
    assert bests == [True, True, False, True]
    assert stopper.best == 0.7


def test_min_delta_requires_a_real_improvement():
    stopper, bests, _ = run([0.50, 0.505, 0.52], mode="max", patience=5, min_delta=0.01)
    assert bests == [True, False, True]
    assert stopper.best == 0.52


def test_equal_value_is_not_an_improvement():
    _, bests, _ = run([0.5, 0.5], mode="max", patience=5)
    assert bests == [True, False]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_never_improve(bad):
    stopper, bests, stopped = run([bad, 0.3, bad, bad], mode="max", patience=1)
    assert bests == [False, True, False, False]
    assert stopped == 4
    assert stopper.best == 0.3


def test_bad_arguments():
    with pytest.raises(ValueError):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError):
        EarlyStopping(patience=-1)
