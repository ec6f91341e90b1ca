"""Submissions that are always valid: info.csv's rows in its order, integer labels, header ImageID,ans."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core import atomic
from core.errors import UserError


def build(test_ids: np.ndarray, labels: np.ndarray, info_csv: Path | None) -> pd.DataFrame:
    if info_csv is None:
        return pd.DataFrame({"ImageID": list(test_ids), "ans": labels.astype(np.int64)})
    info = pd.read_csv(info_csv, dtype={"ImageID": str})
    by_id = pd.Series(labels.astype(np.int64), index=list(test_ids))
    missing = [i for i in info["ImageID"] if i not in by_id.index]
    if missing:
        raise UserError(f"{info_csv}: ImageID '{missing[0]}' has no prediction ({len(missing)} rows missing)")
    return pd.DataFrame({"ImageID": info["ImageID"], "ans": by_id.loc[info["ImageID"]].to_numpy()})


def validate(frame: pd.DataFrame, n_classes: int, info_csv: Path | None) -> None:
    if list(frame.columns) != ["ImageID", "ans"]:
        raise UserError(f"submission header must be ImageID,ans, not {','.join(frame.columns)}")
    if not pd.api.types.is_integer_dtype(frame["ans"]):
        raise UserError("submission labels must be integers")
    bad = frame.index[(frame["ans"] < 0) | (frame["ans"] >= n_classes)]
    if len(bad):
        raise UserError(f"submission row {int(bad[0]) + 2} has label {frame['ans'][bad[0]]} outside 0..{n_classes - 1}")
    if info_csv is not None:
        info = pd.read_csv(info_csv, dtype={"ImageID": str})
        if info["ImageID"].tolist() != frame["ImageID"].tolist():
            raise UserError(f"submission rows do not match {info_csv} row for row")


def write(frame: pd.DataFrame, path: Path, n_classes: int, info_csv: Path | None, overwrite: bool = False) -> Path:
    """Check, write to a temporary file, check what was written, then rename into place."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists; pass --overwrite to replace it")
    validate(frame, n_classes, info_csv)
    with atomic.atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
        validate(pd.read_csv(tmp, dtype={"ImageID": str}), n_classes, info_csv)
    return path
