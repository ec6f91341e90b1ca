"""check_data's duplicates section: exact and near-duplicate sets, the ones a split lets span folds, the
train-test overlap, and the contact sheet of near pairs (see jobs/check_data.py)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.config import MemberConfig
from core.errors import UserError
from imagedata.duplicates import describe_setting, duplicate_links, duplicate_sets
from imagedata.prescan import file_hashes
from imagedata.splits import group_duplicates, make_folds
from report.contact_sheet import write_contact_sheet

SHOWN = 5  # examples printed per finding
PREVIEWED = "the previewed split"


@dataclass
class CheckedSplit:
    table: pd.DataFrame   # id, group, label, fold (rows of the data only)
    name: str             # the file, or 'the previewed split'
    duplicates: str       # the setting it was made with, e.g. 'near<=8'


@dataclass
class Row:
    role: str   # train | test
    id: str
    path: str


@dataclass
class Pool:
    """Every image checked, training rows first, with the hashes that find their copies."""
    rows: list[Row]
    sha: list[str | None]
    phash: list[str | None]
    n_train: int
    folds: dict[str, int]     # training id -> its fold in the checked split


def _fold_span(rows: list[int], pool: list[Row], folds: dict[str, int]) -> int:
    return len({folds.get(pool[i].id) for i in rows if pool[i].role == "train"} - {None})


def _named(rows: list[int], pool: list[Row], folds: dict[str, int], limit: int = 4) -> str:
    def one(i: int) -> str:
        fold = folds.get(pool[i].id) if pool[i].role == "train" else None
        return f"{pool[i].role}:{pool[i].id}" + (f" (fold {fold})" if fold is not None else "")
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return ", ".join(one(i) for i in rows[:limit]) + more


def print_sets(title: str, sets: list[list[int]], pool: list[Row], folds: dict[str, int]) -> None:
    print(f"  {title}: {len(sets)} set(s), {sum(len(s) for s in sets)} files")
    spanning = [rows for rows in sets if _fold_span(rows, pool, folds) > 1]
    shown = spanning[:SHOWN] + [rows for rows in sets if rows not in spanning][: max(0, SHOWN - len(spanning))]
    for rows in shown:
        print("    = " + _named(rows, pool, folds))


def hashed_pool(train: pd.DataFrame, test: pd.DataFrame | None, checked: CheckedSplit, cache_dir: Path) -> Pool:
    rows = [Row("train", i, p) for i, p in zip(train["id"], train["path"])]
    sha, phash = file_hashes(train["path"].tolist(), cache_dir, desc="hash training images")
    if test is not None:
        rows += [Row("test", i, p) for i, p in zip(test["id"], test["path"])]
        test_sha, test_phash = file_hashes(test["path"].tolist(), cache_dir, desc="hash test images")
        sha, phash = sha + test_sha, phash + test_phash
    return Pool(rows, sha, phash, len(train), dict(zip(checked.table["id"], checked.table["fold"])))


def report_spanning(config: MemberConfig, train: pd.DataFrame, pool: Pool, exact: list[list[int]],
                    checked: CheckedSplit, cache_dir: Path) -> list[list[int]]:
    """Print how many copy sets span folds now and after grouping; return the training sets that span now."""
    d, distance, n = config.data, config.data.near_duplicate_distance, pool.n_train
    # Leaks are judged on links between training images only, as training groups them: a test image close
    # to two training images (A~T~B, A not~B) must not chain them into one "leaking" set that no split fixes.
    train_sets = duplicate_sets(n, duplicate_links(pool.sha[:n], pool.phash[:n], "near", distance))
    spanning = [rows for rows in train_sets if _fold_span(rows, pool.rows, pool.folds) > 1]
    exact_spanning = [rows for rows in exact if _fold_span(rows, pool.rows, pool.folds) > 1]
    # What a split made now would do: groups absorb copies (near unless the config asks for exact only).
    setting = "exact" if d.duplicates == "exact" else "near"
    after = group_duplicates(train, setting, distance, cache_dir)
    print(f"  spanning folds under {checked.name} (data.duplicates {checked.duplicates}): {len(spanning)} set(s) "
          f"({len(exact_spanning)} of them byte-identical)")
    try:
        grouped = train.assign(group=after.groups.to_numpy())
        preview = dict(zip(train["id"], make_folds(grouped, d.split.n_folds, d.split.seed)))
        after_text = f"{sum(_fold_span(rows, pool.rows, preview) > 1 for rows in train_sets)} set(s)"
    except UserError as err:
        after_text = f"no split possible ({err})"
    print(f"  spanning folds after grouping (data.duplicates {describe_setting(setting, distance)}): "
          f"{after_text}; {after.merged} group(s) would merge with their copies")
    return spanning


def report_overlap(everything: list[list[int]], pool: Pool) -> None:
    """The sets that join training and test images (shown only)."""
    overlap = [rows for rows in everything if {pool.rows[i].role for i in rows} == {"train", "test"}]
    print(f"  train-test overlap: {len(overlap)} set(s) join training and test images "
          f"(shown only; the test list is never altered)")
    for rows in overlap[:SHOWN]:
        print("    = " + _named(rows, pool.rows, pool.folds))


def leak_text(spanning: list[list[int]], pool: Pool, checked: CheckedSplit) -> str:
    return (f"{checked.name} (made with data.duplicates {checked.duplicates}) leaks through duplicates: "
            f"{len(spanning)} set(s) of copies span folds, e.g. {_named(spanning[0], pool.rows, pool.folds, 2)}; "
            + ("set data.duplicates near before the split file is made" if checked.name == PREVIEWED
               else "make a new split (a new split name) with data.duplicates near"))


def sheet_pairs(pairs: np.ndarray, pool: Pool, out: Path, distance: int, limit: int = 24) -> None:
    """The near (not byte-identical) pairs, the weakest matches first: if those are true copies, so are the rest."""
    sha, rows_of, folds = pool.sha, pool.rows, pool.folds
    near = [(int(i), int(j), int(dist)) for i, j, dist in pairs if sha[i] != sha[j]]
    near.sort(key=lambda p: (-p[2], p[0], p[1]))

    def label(i: int) -> str:
        fold = folds.get(rows_of[i].id) if rows_of[i].role == "train" else None
        short = "/".join(Path(rows_of[i].id).parts[-2:])  # the sheet is narrow: the last two parts name the file
        return f"{rows_of[i].role}:{short}" + (f" f{fold}" if fold is not None else "")

    rows = [(rows_of[i].path, rows_of[j].path, f"{dist} bits  {label(i)} | {label(j)}") for i, j, dist in near[:limit]]
    write_contact_sheet(rows, out, f"{len(near)} near-duplicate pair(s) within {distance} bits; "
                                   f"{len(rows)} shown, weakest first")
    print(f"  contact sheet: {out} ({len(rows)} of {len(near)} near pair(s), weakest match first)")
