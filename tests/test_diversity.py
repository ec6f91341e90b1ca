"""Diversity tables: disagreement, error correlation, oracle rate, heatmap."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from ensemble.diversity import disagreement, error_correlation, member_accuracy, oracle_rate
from report.plots import plot_heatmap

Y = np.array([0, 1, 2, 0, 1, 2])
PREDS = {
    "b": np.array([0, 1, 2, 0, 1, 0]),  # one error (row 5)
    "a": np.array([0, 1, 0, 0, 2, 2]),  # two errors (rows 2, 4)
    "c": np.array([1, 1, 2, 0, 1, 2]),  # one error (row 0)
}


def test_disagreement_handcrafted() -> None:
    table = disagreement(PREDS)
    assert list(table.index) == ["a", "b", "c"] and list(table.columns) == ["a", "b", "c"]
    assert table.loc["a", "b"] == pytest.approx(3 / 6)
    assert table.loc["b", "c"] == pytest.approx(2 / 6)
    assert table.loc["a", "c"] == pytest.approx(3 / 6)
    np.testing.assert_array_equal(np.diag(table), 0.0)
    np.testing.assert_array_equal(table.to_numpy(), table.to_numpy().T)


def test_probabilities_are_read_by_argmax() -> None:
    probs = {k: np.eye(3)[v] * 0.7 + 0.1 for k, v in PREDS.items()}
    assert disagreement(probs).equals(disagreement(PREDS))


def test_error_correlation_equals_corrcoef() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    preds = {f"m{i}": np.where(rng.random(200) < 0.7, y, (y + 1) % 3) for i in range(4)}
    table = error_correlation(preds, y)
    errors = np.stack([preds[k] != y for k in sorted(preds)]).astype(float)
    np.testing.assert_allclose(table.to_numpy(), np.corrcoef(errors), atol=1e-12)


def test_error_correlation_constant_columns_without_warnings() -> None:
    preds = {"perfect": Y.copy(), "always_wrong": (Y + 1) % 3, **PREDS}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = error_correlation(preds, Y)
    assert np.isfinite(table.to_numpy()).all()
    assert table.loc["perfect", "a"] == 0.0 and table.loc["always_wrong", "perfect"] == 0.0
    np.testing.assert_array_equal(np.diag(table), 1.0)
    # a errs on rows 2, 4; c on row 0: no shared errors -> negative correlation.
    assert table.loc["a", "c"] < 0


def test_oracle_rate_and_accuracy() -> None:
    assert oracle_rate(PREDS, Y) == 1.0  # every row has some member right
    assert oracle_rate({"a": PREDS["a"]}, Y) == pytest.approx(4 / 6)
    assert oracle_rate({"a": PREDS["a"], "wrong": (Y + 1) % 3}, Y) == pytest.approx(4 / 6)
    acc = member_accuracy(PREDS, Y)
    assert acc["a"] == pytest.approx(4 / 6) and acc["b"] == pytest.approx(5 / 6)


def test_mismatched_rows_rejected() -> None:
    with pytest.raises(ValueError):
        disagreement({"a": np.zeros(3, int), "b": np.zeros(4, int)})
    with pytest.raises(ValueError):
        error_correlation(PREDS, Y[:-1])


def test_plot_heatmap_writes_png(tmp_path) -> None:
    path = plot_heatmap(disagreement(PREDS), "disagreement", tmp_path / "sub" / "d.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
