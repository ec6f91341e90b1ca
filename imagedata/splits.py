"""Persisted, leak-free splits: a CSV every member of an ensemble shares.

A split file lists every training image with its group and fold. A holdout is
fold 0 of a stratified group k-fold, so holdout and k-fold share one mechanism
and one guarantee: a group (a person) never lands in two folds.

Before the folds are made, each group absorbs the duplicates of its images
(`data.duplicates`: exact copies, or near ones too; see duplicates.py), so a
picture and its copy are never one in train and one in val. Columns: id, group
(the group the folds were made on), label, fold, data_group (the data's own
group), duplicates (the setting that made the file, e.g. 'near<=8'; files
from before the setting existed read as 'off') and corrections (the corrections
file applied to the labels before the folds were made: its sha256 and counts, or
'none'; see corrections.py).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock
from sklearn.model_selection import StratifiedGroupKFold

from core import atomic, files
from core.errors import UserError
from core.hashing import sha256_file
from core.names import path_inside
from imagedata.corrections import NONE
from imagedata.duplicates import DEFAULT_DISTANCE, Absorbed, absorb, describe_setting, duplicate_links
from imagedata.prescan import file_hashes


@dataclass
class Split:
    name: str
    path: Path
    sha256: str
    table: pd.DataFrame  # id, group, label, fold, data_group, duplicates
    duplicates: str = "off"  # the setting that made the file, as describe_setting writes it
    corrections: str = NONE  # the corrections applied before the folds were made, as Applied.setting writes it

    @property
    def merged_groups(self) -> int:
        """How many of the data's groups were absorbed into another through duplicates."""
        return int(self.table["data_group"].nunique() - self.table["group"].nunique())

    def rows(self, fold: int, role: str) -> pd.DataFrame:
        mask = self.table["fold"] == fold if role == "val" else self.table["fold"] != fold
        return self.table[mask]


def make_folds(train: pd.DataFrame, n_folds: int, seed: int) -> np.ndarray:
    groups = train["group"].astype(str).to_numpy()
    if len(np.unique(groups)) < n_folds:
        raise UserError(f"cannot make {n_folds} folds from only {len(np.unique(groups))} groups")
    folds = np.full(len(train), -1, dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    try:
        for fold, (_, val_idx) in enumerate(splitter.split(np.zeros(len(train)), train["label"].to_numpy(), groups)):
            folds[val_idx] = fold
    except ValueError as err:  # scikit-learn's own check of the labels or groups: one line, not a traceback
        raise UserError(f"cannot make {n_folds} folds of {len(train)} rows: {str(err).splitlines()[0]}") from err
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


def group_duplicates(train: pd.DataFrame, setting: str, distance: int, cache_dir: Path | None) -> Absorbed:
    """The groups of `train` after absorbing its duplicates under the setting (hashes cached by fingerprint)."""
    if setting == "off":
        return absorb(train["group"], np.zeros((0, 2), dtype=np.int64))
    sha256, phash = file_hashes(train["path"].tolist(), cache_dir, desc="hash training images")
    return absorb(train["group"], duplicate_links(sha256, phash, setting, distance))


def _check_setting(split: Split, wanted: str) -> None:
    if split.duplicates != wanted:
        raise UserError(f"split file {split.path} was made with data.duplicates {split.duplicates} but this member "
                        f"asks for {wanted}; members sharing a split must group duplicates alike: set "
                        f"data.duplicates/near_duplicate_distance to match ({split.duplicates}), "
                        f"or use a new split name")


def _check_corrections(split: Split, wanted: str) -> None:
    if split.corrections != wanted:
        raise UserError(f"split file {split.path} was made with corrections {split.corrections} but this member "
                        f"asks for {wanted}: members sharing a split must train on the same labels; "
                        f"use a new split name for the corrected data")


def _check_duplicates(split: Split, train: pd.DataFrame, absorbed: Absorbed) -> None:
    # Files replaced under the same names since the split was made may be copies now: judge today's bytes.
    groups = absorbed.groups.set_axis(train["id"].to_numpy()).reindex(split.table["id"])
    leaks = find_leaks(split.table["id"], groups, split.table["fold"])
    if leaks:
        raise UserError(f"split file {split.path} leaks through duplicates: {len(leaks)} set(s) of copies span "
                        f"folds (under data.duplicates {split.duplicates}), e.g. group {describe_leaks(leaks, 1)}; "
                        f"use a new split name or delete the file")


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
    text = files.read_text(path, "split file")  # random bytes: one line naming the file, not a decode traceback
    try:
        # keep_default_na=False: an id or group such as "NA" or "None" is a name, not a missing value.
        table = pd.read_csv(io.StringIO(text), dtype={"id": str, "group": str, "data_group": str, "duplicates": str},
                            keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        raise UserError(f"split file {path} is not a readable CSV") from err
    missing = {"id", "group", "label", "fold"} - set(table.columns)
    if missing:
        raise UserError(f"split file {path} lacks column(s) {', '.join(sorted(missing))}")
    if table.empty or not pd.api.types.is_integer_dtype(table["fold"]) or (table["fold"] < 0).any():
        raise UserError(f"split file {path}: column 'fold' must hold whole numbers >= 0 on every row")
    if table["id"].duplicated().any():
        raise UserError(f"split file {path} lists id '{table['id'][table['id'].duplicated()].iloc[0]}' twice")
    # Files written before duplicates were grouped have neither column: their folds grouped nothing.
    if "data_group" not in table.columns:
        table["data_group"] = table["group"]
    table["data_group"] = table["data_group"].astype(str)
    settings = table["duplicates"].dropna().astype(str).unique() if "duplicates" in table.columns else ["off"]
    if len(settings) != 1:
        raise UserError(f"split file {path}: column 'duplicates' must hold one setting on every row "
                        f"(found {', '.join(map(str, settings)) or 'none'})")
    table["duplicates"] = settings[0]
    return Split(path.stem, path, sha256_file(path), table, str(settings[0]), _one_value(table, path, "corrections"))


def _one_value(table: pd.DataFrame, path: Path, column: str) -> str:
    """A column that holds one setting on every row ('none' for files written before it existed)."""
    if column not in table.columns:
        table[column] = NONE
        return NONE
    values = table[column].astype(str).unique()
    if len(values) != 1:
        raise UserError(f"split file {path}: column '{column}' must hold one value on every row")
    return str(values[0])


def _check_writable(train: pd.DataFrame, path: Path) -> None:
    """Refuse data a split could not hold before its file is written: a written file would keep its name
    broken after the data is fixed (every later run would read it back and refuse it)."""
    repeated = train["id"][train["id"].duplicated()]
    if len(repeated):
        raise UserError(f"the training data lists image '{repeated.iloc[0]}' twice; split {path} is not written "
                        f"(list each image once)")


def ensure_split(train: pd.DataFrame, name: str, n_folds: int, seed: int, splits_dir: Path,
                 duplicates: str = "near", distance: int = DEFAULT_DISTANCE,
                 cache_dir: Path | None = None, corrections: str = NONE) -> Split:
    """Reuse `splits/<name>.csv` if present (checking it fits the data), otherwise create it once.

    A new file is made on groups that have absorbed the data's duplicates under `duplicates`
    (exact | near | off) and `distance`; an existing one must have been made with the same setting,
    and with the same `corrections` (Applied.setting() of the data's corrections file, or 'none').
    """
    path = path_inside(splits_dir, name, "split name (data.split.name)", ".csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    wanted = describe_setting(duplicates, distance)
    absorbed = group_duplicates(train, duplicates, distance, cache_dir)
    with FileLock(str(path) + ".lock", timeout=120):
        if not path.exists():
            _check_writable(train, path)
            try:
                folds = make_folds(train.assign(group=absorbed.groups.to_numpy()), n_folds, seed)
            except UserError as err:
                if not absorbed.merged:
                    raise
                raise UserError(f"{err} (after data.duplicates {wanted} joined {absorbed.merged} groups "
                                f"with their copies; python -m scripts.check_data lists the duplicate sets)") from None
            table = pd.DataFrame({"id": train["id"], "group": absorbed.groups.to_numpy(), "label": train["label"],
                                  "fold": folds, "data_group": train["group"], "duplicates": wanted,
                                  "corrections": corrections})
            with atomic.atomic_path(path) as tmp:
                table.to_csv(tmp, index=False)
        split = read_split(path)
    _check_setting(split, wanted)
    _check_corrections(split, corrections)
    n_found = int(split.table["fold"].max()) + 1
    if n_found != n_folds:
        raise UserError(f"split file {path} has {n_found} folds but the config asks for {n_folds}")
    _check_matches(split, train)
    _check_duplicates(split, train, absorbed)
    return split
