"""Submissions that are always valid: info.csv's rows in its order, integer labels, header ImageID,ans.

`write` checks the frame, writes a temporary file beside the target, reads that file back
and checks it again, and only then renames it into place; an existing submission is kept
unless `overwrite` is given. A failed write leaves the old file (or no file) behind.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core import atomic
from core.errors import UserError
from core.tables import read_ids_csv

HEADER = ["ImageID", "ans"]


def _check_integer_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"predicted labels must be integers, not {labels.dtype} (class indices, not probabilities)")
    return labels.astype(np.int64)


def build(test_ids: np.ndarray, labels: np.ndarray, info_csv: Path | None) -> pd.DataFrame:
    """Labels per test id → a frame in info.csv's row order (or the ids' order without an info.csv)."""
    ids = [str(i) for i in test_ids]
    labels = _check_integer_labels(labels)
    if len(ids) != len(labels):
        raise UserError(f"{len(ids)} test ids but {len(labels)} predicted labels")
    by_id = pd.Series(labels, index=ids)
    if by_id.index.has_duplicates:
        raise UserError(f"test id '{by_id.index[by_id.index.duplicated()][0]}' has two predictions")
    if info_csv is None:
        return pd.DataFrame({"ImageID": ids, "ans": labels})
    info = read_ids_csv(info_csv, "test list")
    missing = [i for i in info["ImageID"] if i not in by_id.index]
    if missing:
        raise UserError(f"{info_csv}: ImageID '{missing[0]}' has no prediction ({len(missing)} rows missing)")
    extra = sorted(set(ids) - set(info["ImageID"]))
    if extra:
        raise UserError(f"prediction for ImageID '{extra[0]}', which is not in {info_csv} ({len(extra)} such rows); "
                        f"were the members run on another test list?")
    return pd.DataFrame({"ImageID": info["ImageID"].tolist(), "ans": by_id.loc[info["ImageID"]].to_numpy()})


def validate(frame: pd.DataFrame, n_classes: int, info_csv: Path | None) -> None:
    """Every rule a competition checks; a violation raises UserError naming the first row at fault."""
    if list(frame.columns) != HEADER:
        raise UserError(f"submission header must be {','.join(HEADER)}, not {','.join(map(str, frame.columns))}")
    ans = frame["ans"]
    if ans.dtype == bool or not pd.api.types.is_integer_dtype(ans):
        raise UserError(f"submission labels must be integers, not {ans.dtype}")
    bad = np.flatnonzero(((ans < 0) | (ans >= n_classes)).to_numpy())
    if len(bad):
        raise UserError(f"submission row {bad[0] + 2} has label {ans.iloc[bad[0]]} outside 0..{n_classes - 1}")
    if info_csv is None:
        return
    expected = read_ids_csv(info_csv, "test list")["ImageID"].tolist()
    got = frame["ImageID"].astype(str).tolist()
    if len(got) != len(expected):
        raise UserError(f"submission has {len(got)} rows but {info_csv} has {len(expected)}")
    for row, (a, b) in enumerate(zip(got, expected), start=2):
        if a != b:
            raise UserError(f"submission line {row} is ImageID '{a}' but {info_csv} line {row} is '{b}'; "
                            f"rows must follow info.csv exactly")


def write_checked(frame: pd.DataFrame, tmp: Path, n_classes: int, info_csv: Path | None, path: Path) -> Path:
    """Check `frame`, write it to `tmp` (a temporary sibling of `path`) and check what was written."""
    validate(frame, n_classes, info_csv)
    frame.to_csv(tmp, index=False)
    written = pd.read_csv(tmp, dtype={"ImageID": str}, keep_default_na=False)
    validate(written, n_classes, info_csv)
    if not written.equals(frame.reset_index(drop=True).astype({"ImageID": str, "ans": np.int64})):
        raise UserError(f"{path}: the written file does not read back as the submission; nothing was changed")
    return tmp


def write(frame: pd.DataFrame, path: Path, n_classes: int, info_csv: Path | None, overwrite: bool = False) -> Path:
    """Check, write to a temporary file, check what was written, then rename into place."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists; pass --overwrite to replace it")
    validate(frame, n_classes, info_csv)
    with atomic.atomic_path(path) as tmp:
        write_checked(frame, tmp, n_classes, info_csv, path)
    return path
