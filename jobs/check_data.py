"""The check_data job: counts, imbalance, bad files, duplicates, leaks and sizes of a data set, printed.

Its result's exit code: 0 fit to train on, 1 problems found (listed). See scripts/check_data.py; the
duplicates section is jobs/check_duplicates.py."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.config import MemberConfig, load_config
from core.errors import UserError
from core.settings import Settings
from imagedata.duplicates import describe_setting, duplicate_links, duplicate_sets, exact_sets, near_pairs, to_codes
from imagedata.prescan import scan, store_hashes
from imagedata.sources import Dataset, load_dataset
from imagedata.splits import describe_leaks, find_leaks, group_duplicates, make_folds, read_split
from imagedata.tasks import task_classes, task_digits, task_layout
from jobs.check_duplicates import (
    PREVIEWED,
    SHOWN,
    CheckedSplit,
    hashed_pool,
    leak_text,
    print_sets,
    report_overlap,
    report_spanning,
    sheet_pairs,
)


@dataclass
class CheckDataRequest:
    config: str | None = None          # a member config whose data section is checked, or:
    source: str | None = None          # a data source name with its --root
    root: str | None = None
    overrides: list[str] = field(default_factory=list)
    test: str | None = None            # a test list: an info.csv or a folder of images
    split: str | None = None           # a split name under <output root>/splits/, or a split CSV path
    n_folds: int | None = None         # folds for a previewed split
    on_bad_image: str | None = None    # error | skip
    duplicates: str | None = None      # data.duplicates for a previewed split
    sheet: str | None = None           # a contact-sheet PNG of the near-duplicate pairs
    allow_duplicate_leaks: bool = False


@dataclass
class CheckDataResult:
    problems: list[str]                # what makes the data unfit to train on, as printed

    @property
    def code(self) -> int:
        """The exit code: 0 fit to train on, 1 problems found."""
        return 1 if self.problems else 0


def member_config(req: CheckDataRequest) -> MemberConfig:
    if bool(req.config) == bool(req.source):
        raise UserError("give either --config FILE or --source NAME --root PATH")
    overrides = list(req.overrides)
    if req.source:
        if not req.root:
            raise UserError("--source needs --root PATH")
        overrides += [f"data.source={req.source}", f"data.root={req.root}"]
    if req.test:
        overrides.append(f"data.test={req.test}")
    if req.on_bad_image:
        overrides.append(f"data.on_bad_image={req.on_bad_image}")
    if req.n_folds:
        overrides += [f"data.split.n_folds={req.n_folds}", "data.split.fold=0"]
    if req.duplicates:
        overrides.append(f"data.duplicates={req.duplicates}")
    return load_config(req.config, overrides)


def split_path(req: CheckDataRequest, config: MemberConfig, splits_dir: Path) -> Path | None:
    if req.split:
        given = Path(req.split)
        return given if given.suffix == ".csv" or len(given.parts) > 1 else splits_dir / f"{req.split}.csv"
    if req.config:
        return splits_dir / f"{config.data.split.name}.csv"
    return None


def print_table(title: str, table: pd.DataFrame) -> None:
    print(f"\n{title}")
    print(table.to_string())


class Findings:
    """Problems that make the data unfit to train on as it stands; they set the exit code."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, text: str) -> None:
        self.problems.append(text)
        print(f"PROBLEM: {text}")


def report_bad(train_scan, test_scan, policy: str, findings: Findings) -> None:
    print(f"\nBad files (data.on_bad_image={policy}):")
    if not train_scan.bad and not (test_scan and test_scan.bad):
        print("  none: every file decodes")
    for path, reason in train_scan.bad.items():
        print(f"  train  {path}: {reason}")
    for path, reason in (test_scan.bad.items() if test_scan else []):
        print(f"  test   {path}: {reason}")
    if train_scan.bad:
        if policy == "error":
            findings.add(f"{len(train_scan.bad)} training file(s) cannot be decoded; fix or remove them, "
                         f"or set data.on_bad_image=skip")
        else:
            print(f"  {len(train_scan.bad)} training file(s) will be skipped and listed in skipped_images.csv")
    if test_scan and test_scan.bad:
        findings.add(f"{len(test_scan.bad)} test file(s) cannot be decoded; a submission needs every row")


def split_table(req: CheckDataRequest, config: MemberConfig, train: pd.DataFrame, splits_dir: Path, cache_dir: Path,
                findings: Findings) -> CheckedSplit:
    """The split to check: the persisted file, or a preview of the folds training would make."""
    path = split_path(req, config, splits_dir)
    s, d = config.data.split, config.data
    if path is None or not path.exists():
        if req.split:
            raise UserError(f"split file {path} does not exist")
        note = f"{path} does not exist yet; " if path else ""
        setting = describe_setting(d.duplicates, d.near_duplicate_distance)
        print(f"\nSplit: {note}previewing {s.n_folds} stratified group folds (seed {s.seed}, "
              f"data.duplicates {setting}), nothing written")
        # The preview groups duplicates exactly as the first member would before writing the file.
        groups = group_duplicates(train, d.duplicates, d.near_duplicate_distance, cache_dir).groups
        grouped = train.assign(group=groups.to_numpy())
        table = grouped.assign(fold=make_folds(grouped, s.n_folds, s.seed))[["id", "group", "label", "fold"]]
        return CheckedSplit(table, PREVIEWED, setting)
    split = read_split(path)
    print(f"\nSplit: {path} (sha256 {split.sha256[:12]}…), {split.table['fold'].nunique()} folds, "
          f"made with data.duplicates {split.duplicates} ({split.merged_groups} group(s) merged with their copies)")
    ours, theirs = set(train["id"]), set(split.table["id"])
    if ours != theirs:
        findings.add(f"split file {path} does not fit the data: {len(ours - theirs)} images are not in it, "
                     f"{len(theirs - ours)} of its rows are not in the data")
    return CheckedSplit(split.table[split.table["id"].isin(ours)], str(path), split.duplicates)


def report_leaks(table: pd.DataFrame, train: pd.DataFrame, findings: Findings) -> None:
    # Both groupings count: the split file's own column, and the groups the data has today.
    current = train.set_index("id")["group"].reindex(table["id"])
    leaks = find_leaks(table["id"], current, table["fold"]) | find_leaks(table["id"], table["group"], table["fold"])
    print("\nLeaks (a group in two folds, i.e. in train and val at once):")
    if leaks:
        findings.add(f"{len(leaks)} group(s) appear in more than one fold: {describe_leaks(leaks, SHOWN)}")
    else:
        print(f"  none: each of {current.nunique()} groups lies in exactly one fold")


def report_counts(dataset: Dataset, table: pd.DataFrame, fold: int) -> None:
    names = pd.Series(dataset.classes)
    per_fold = pd.crosstab(table["label"], table["fold"]).reindex(range(len(dataset.classes)), fill_value=0)
    per_fold.columns = [f"fold {c}" for c in per_fold.columns]
    roles = pd.DataFrame({"train": per_fold.drop(columns=f"fold {fold}", errors="ignore").sum(axis=1),
                          "val": per_fold.get(f"fold {fold}", 0)})
    counts = pd.concat([per_fold, roles], axis=1)
    counts.insert(0, "class", names)
    counts["total"] = per_fold.sum(axis=1)
    counts.index.name = "label"
    print_table(f"Images per class, per fold, and per role when validating on fold {fold}:", counts)
    totals = counts["total"]
    empty = names[totals.to_numpy() == 0].tolist()
    ratio = "inf" if empty else f"{totals.max() / totals.min():.2f}"
    print(f"\nClass imbalance: largest/smallest class = {ratio} "
          f"({names[totals.idxmax()]}: {totals.max()}, {names[totals.idxmin()]}: {totals.min()})")
    if empty:
        print(f"  classes with no images: {', '.join(empty[:SHOWN])}{' ...' if len(empty) > SHOWN else ''}")
    groups = table.groupby("group").size()
    print(f"Groups: {len(groups)}; images per group min {groups.min()}, median {groups.median():g}, "
          f"max {groups.max()}")
    if dataset.name == "mask":
        odd = groups[groups != 7]
        if len(odd):
            print(f"  {len(odd)} people do not have exactly 7 photos, e.g. "
                  + ", ".join(f"{g} ({n})" for g, n in odd.head(SHOWN).items()))


def report_task_counts(dataset: Dataset, table: pd.DataFrame, fold: int, member_task: str | None) -> None:
    """Per task of the composite label: images per task class, in train and val, and the imbalance."""
    digits = task_digits(table["label"].to_numpy(), dataset.composite)
    for name, _ in task_layout(dataset.composite):
        classes = task_classes(dataset, name)
        frame = pd.DataFrame({"class": classes})
        in_val = (table["fold"] == fold).to_numpy()
        frame["train"] = np.bincount(digits[name][~in_val], minlength=len(classes))
        frame["val"] = np.bincount(digits[name][in_val], minlength=len(classes))
        frame["total"] = frame["train"] + frame["val"]
        mark = " (this member's task)" if name == member_task else ""
        print_table(f"Task {name}{mark}: images per class when validating on fold {fold}:", frame)
        totals = frame["total"]
        ratio = "inf" if (totals == 0).any() else f"{totals.max() / totals.min():.2f}"
        print(f"  task {name} imbalance: largest/smallest class = {ratio} "
              f"({classes[int(totals.idxmax())]}: {totals.max()}, {classes[int(totals.idxmin())]}: {totals.min()})")


def report_duplicates(req: CheckDataRequest, config: MemberConfig, train: pd.DataFrame, test: pd.DataFrame | None,
                      checked: CheckedSplit, cache_dir: Path, findings: Findings) -> None:
    """Exact and near-duplicate sets, the ones the split lets span folds, and train-test overlap."""
    distance = config.data.near_duplicate_distance
    pool = hashed_pool(train, test, checked, cache_dir)
    exact = exact_sets(pool.sha)
    codes, valid = to_codes(pool.phash)
    pairs = near_pairs(codes, distance, valid)
    everything = duplicate_sets(len(pool.rows), duplicate_links(pool.sha, pool.phash, "near", distance))
    exact_keys = {tuple(rows) for rows in exact}
    near = [rows for rows in everything if tuple(rows) not in exact_keys]  # joined through a perceptual match

    print(f"\nDuplicates (exact: the same bytes; near: perceptual hash within {distance} bits, "
          f"data.near_duplicate_distance):")
    if not everything:
        print("  none")
    else:
        print_sets("exact (byte-identical)", exact, pool.rows, pool.folds)
        print_sets(f"near (re-encoded, resized, cropped; within {distance} bits)", near, pool.rows, pool.folds)
        spanning = report_spanning(config, train, pool, exact, checked, cache_dir)
        if test is not None:
            report_overlap(everything, pool)
        if spanning and req.allow_duplicate_leaks:
            print(f"  allowed by --allow-duplicate-leaks: {leak_text(spanning, pool, checked)}")
        elif spanning:
            findings.add(leak_text(spanning, pool, checked))
    if req.sheet:  # asked for: even an empty sheet is written, rather than leaving an older file in place
        sheet_pairs(pairs, pool, Path(req.sheet), distance)


def report_sizes(train_scan, test_scan) -> None:
    sizes = [s for s in train_scan.sizes + (test_scan.sizes if test_scan else []) if s is not None]
    if not sizes:
        return
    frame = pd.DataFrame(sizes, columns=["width", "height"])
    stats = frame.describe().loc[["min", "50%", "max"]].rename(index={"50%": "median"}).astype(int)
    print_table("Image sizes (pixels, upright):", stats.T)
    common = frame.value_counts().head(3)
    print("  most common: " + ", ".join(f"{w}x{h} ({n})" for (w, h), n in common.items())
          + f"; {len(frame.value_counts())} distinct size(s)")


def check_data(req: CheckDataRequest, settings: Settings) -> CheckDataResult:
    """Print what is wrong with the data the request names; the result lists the problems (exit code 1 if any)."""
    config = member_config(req)
    # The whole composite label even for a task member (data.task): its split is made on the full classes.
    dataset = load_dataset(dataclasses.replace(config.data, task=None), settings.data_root)
    train, test = dataset.train, dataset.test
    print(f"Data: source {dataset.name}, root {dataset.root}")
    print(f"  training pool: {len(train)} images, {train['group'].nunique()} groups, {dataset.num_classes} classes")
    print(f"  test list: {'none' if test is None else f'{len(test)} images'}"
          + (f" ({dataset.test_info})" if dataset.test_info else ""))
    findings = Findings()
    # One visit per file: the decode that finds bad files also takes the duplicate hashes (cached below).
    train_scan = scan(train["path"].tolist(), "scan training images", with_phash=True)
    test_scan = scan(test["path"].tolist(), "scan test images", with_phash=True) if test is not None else None
    report_bad(train_scan, test_scan, config.data.on_bad_image, findings)

    # Bad rows leave before the split is checked, exactly as training would drop them under skip.
    kept = train[~train["path"].isin(train_scan.bad)]
    good = [i for i, p in enumerate(train["path"]) if p not in train_scan.bad]
    store_hashes(kept["path"].tolist(), [train_scan.sha256[i] for i in good], [train_scan.phash[i] for i in good],
                 settings.image_cache)
    if test_scan is not None:
        store_hashes(test_scan.paths, test_scan.sha256, test_scan.phash, settings.image_cache)
    checked = split_table(req, config, kept, settings.splits, settings.image_cache, findings)
    table = checked.table
    fold = config.data.split.fold
    report_counts(dataset, table, fold if fold in set(table["fold"]) else int(table["fold"].min()))
    if dataset.composite is not None:
        report_task_counts(dataset, table, fold if fold in set(table["fold"]) else int(table["fold"].min()),
                           config.data.task)
    report_leaks(table, kept, findings)
    report_duplicates(req, config, kept, test, checked, settings.image_cache, findings)
    report_sizes(train_scan, test_scan)
    if findings.problems:
        print(f"\n{len(findings.problems)} problem(s) found:")
        for text in findings.problems:
            print(f"  - {text}")
    else:
        print("\nOK: no leaks (by group or through duplicates) and no blocking bad files")
    return CheckDataResult(findings.problems)

