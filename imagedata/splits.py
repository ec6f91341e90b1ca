"""Persisted, leak-free splits: a CSV every member of an ensemble shares.

A split file lists every training image with its group and fold. A holdout is
fold 0 of a stratified group k-fold, so holdout and k-fold share one mechanism
and one guarantee: a group (a person) never lands in two folds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock
from sklearn.model_selection import StratifiedGroupKFold

from core import atomic
from core.errors import UserError
from core.hashing import sha256_file
from core.names import path_inside


@dataclass
class Split:
    name: str
    path: Path
    sha256: str
    table: pd.DataFrame  # id, group, label, fold

    def rows(self, fold: int, role: str) -> pd.DataFrame:
        mask = self.table["fold"] == fold if role == "val" else self.table["fold"] != fold
        return self.table[mask]


def make_folds(train: pd.DataFrame, n_folds: int, seed: int) -> np.ndarray:
    groups = train["group"].astype(str).to_numpy()
    if len(np.unique(groups)) < n_folds:
        raise UserError(f"cannot make {n_folds} folds from only {len(np.unique(groups))} groups")
    folds = np.full(len(train), -1, dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for fold, (_, val_idx) in enumerate(splitter.split(np.zeros(len(train)), train["label"].to_numpy(), groups)):
        folds[val_idx] = fold
    return folds


def find_leaks(ids: pd.Series, groups: pd.Series, folds: pd.Series) -> dict[str, list[int]]:
    """group -> the folds it appears in, for every group found in more than one fold."""
    table = pd.DataFrame({"group": groups.astype(str).to_numpy(), "fold": folds.to_numpy()}, index=ids.to_numpy())
    spread = table.groupby("group")["fold"].unique()
    return {group: sorted(int(f) for f in folds) for group, folds in spread.items() if len(folds) > 1}


def describe_leaks(leaks: dict[str, list[int]], limit: int = 3) -> str:
    named = [f"'{group}' in folds {', '.join(map(str, folds))}" for group, folds in list(leaks.items())[:limit]]
    more = f" and {len(leaks) - limit} more" if len(leaks) > limit else ""
    return "; ".join(named) + more


def _check_matches(split: Split, train: pd.DataFrame) -> None:
    ours = set(train["id"])
    theirs = set(split.table["id"])
    if ours != theirs:
        new, gone = sorted(ours - theirs), sorted(theirs - ours)
        example = f"'{new[0]}' is not in the file" if new else f"'{gone[0]}' is not in the data"
        raise UserError(
            f"split file {split.path} was made for different data ({len(new)} images not in it, "
            f"{len(gone)} in it but not in the data; e.g. {example}); use a new split name or delete the file"
        )
    # Judge leaks by today's groups: a split is only leak-free for the grouping the data has now.
    groups = train.set_index("id")["group"].reindex(split.table["id"])
    leaks = find_leaks(split.table["id"], groups, split.table["fold"])
    if leaks:
        raise UserError(f"split file {split.path} leaks: {len(leaks)} group(s) span folds, "
                        f"{describe_leaks(leaks)}; use a new split name or delete the file")


def read_split(path: Path) -> Split:
    if not Path(path).is_file():
        raise UserError(f"split file {path} does not exist (it is made when the first member trains on it; "
                        f"copy the splits/ folder along with the registry)")
    try:
        # keep_default_na=False: an id or group such as "NA" or "None" is a name, not a missing value.
        table = pd.read_csv(path, dtype={"id": str, "group": str}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise UserError(f"split file {path} is not a readable CSV") from err
    missing = {"id", "group", "label", "fold"} - set(table.columns)
    if missing:
        raise UserError(f"split file {path} lacks column(s) {', '.join(sorted(missing))}")
    if table.empty or not pd.api.types.is_integer_dtype(table["fold"]) or (table["fold"] < 0).any():
        raise UserError(f"split file {path}: column 'fold' must hold whole numbers >= 0 on every row")
    if table["id"].duplicated().any():
        raise UserError(f"split file {path} lists id '{table['id'][table['id'].duplicated()].iloc[0]}' twice")
    return Split(path.stem, path, sha256_file(path), table)


def ensure_split(train: pd.DataFrame, name: str, n_folds: int, seed: int, splits_dir: Path) -> Split:
    """Reuse `splits/<name>.csv` if present (checking it fits the data), otherwise create it once."""
    path = path_inside(splits_dir, name, "split name (data.split.name)", ".csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=120):
        if not path.exists():
            folds = make_folds(train, n_folds, seed)
            table = pd.DataFrame({"id": train["id"], "group": train["group"], "label": train["label"], "fold": folds})
            with atomic.atomic_path(path) as tmp:
                table.to_csv(tmp, index=False)
        split = read_split(path)
    n_found = int(split.table["fold"].max()) + 1
    if n_found != n_folds:
        raise UserError(f"split file {path} has {n_found} folds but the config asks for {n_folds}")
    _check_matches(split, train)
    return split
