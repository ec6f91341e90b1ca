"""The check_data job: counts, imbalance, bad files, duplicates, leaks and sizes of a data set, printed.

The exit code it returns: 0 fit to train on, 1 problems found (listed). See scripts/check_data.py."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd

from core.errors import UserError
from core.settings import load_settings
from core.config import MemberConfig, load_config
from imagedata.prescan import scan
from imagedata.sources import Dataset, load_dataset
from imagedata.splits import describe_leaks, find_leaks, make_folds, read_split

SHOWN = 5  # examples printed per finding


def member_config(args) -> MemberConfig:
    if bool(args.config) == bool(args.source):
        raise UserError("give either --config FILE or --source NAME --root PATH")
    overrides = list(args.overrides)
    if args.source:
        if not args.root:
            raise UserError("--source needs --root PATH")
        overrides += [f"data.source={args.source}", f"data.root={args.root}"]
    if args.test:
        overrides.append(f"data.test={args.test}")
    if args.on_bad_image:
        overrides.append(f"data.on_bad_image={args.on_bad_image}")
    if args.n_folds:
        overrides += [f"data.split.n_folds={args.n_folds}", "data.split.fold=0"]
    return load_config(args.config, overrides)


def split_path(args, config: MemberConfig, splits_dir: Path) -> Path | None:
    if args.split:
        given = Path(args.split)
        return given if given.suffix == ".csv" or len(given.parts) > 1 else splits_dir / f"{args.split}.csv"
    if args.config:
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


def split_table(args, config: MemberConfig, train: pd.DataFrame, splits_dir: Path,
                findings: Findings) -> pd.DataFrame:
    """The split to check (id, group, label, fold): the persisted file, or a preview of the folds."""
    path = split_path(args, config, splits_dir)
    s = config.data.split
    if path is None or not path.exists():
        if args.split:
            raise UserError(f"split file {path} does not exist")
        note = f"{path} does not exist yet; " if path else ""
        print(f"\nSplit: {note}previewing {s.n_folds} stratified group folds (seed {s.seed}), nothing written")
        return train.assign(fold=make_folds(train, s.n_folds, s.seed))[["id", "group", "label", "fold"]]
    split = read_split(path)
    print(f"\nSplit: {path} (sha256 {split.sha256[:12]}…), {split.table['fold'].nunique()} folds")
    ours, theirs = set(train["id"]), set(split.table["id"])
    if ours != theirs:
        findings.add(f"split file {path} does not fit the data: {len(ours - theirs)} images are not in it, "
                     f"{len(theirs - ours)} of its rows are not in the data")
    return split.table[split.table["id"].isin(ours)]


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


def report_duplicates(train: pd.DataFrame, train_scan, test: pd.DataFrame | None, test_scan,
                      folds: dict[str, int]) -> None:
    owners: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row_id, digest in zip(train["id"], train_scan.sha256):
        if digest:
            owners[digest].append(("train", row_id))
    if test is not None:
        for row_id, digest in zip(test["id"], test_scan.sha256):
            if digest:
                owners[digest].append(("test", row_id))
    sets = [files for files in owners.values() if len(files) > 1]
    print("\nByte-identical duplicates (sha256 of the file bytes):")
    if not sets:
        print("  none")
        return
    print(f"  {len(sets)} set(s), {sum(len(s) for s in sets)} files")
    across = [s for s in sets if len({folds.get(i) for role, i in s if role == "train"} - {None}) > 1]
    with_test = [s for s in sets if {"train", "test"} <= {role for role, _ in s}]
    if across:
        print(f"  {len(across)} set(s) span folds: the same picture would be in train and val")
    if with_test:
        print(f"  {len(with_test)} set(s) join training and test images")
    for files in sets[:SHOWN]:
        print("  = " + ", ".join(f"{role}:{row_id}" for role, row_id in files))


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


def check_data(args) -> int:
    """Print what is wrong with the data `args` names (the parsed check_data arguments); 1 if anything is."""
    config = member_config(args)
    settings = load_settings()
    dataset = load_dataset(config.data, settings.data_root)
    train, test = dataset.train, dataset.test
    print(f"Data: source {dataset.name}, root {dataset.root}")
    print(f"  training pool: {len(train)} images, {train['group'].nunique()} groups, {dataset.num_classes} classes")
    print(f"  test list: {'none' if test is None else f'{len(test)} images'}"
          + (f" ({dataset.test_info})" if dataset.test_info else ""))
    findings = Findings()
    train_scan = scan(train["path"].tolist(), "scan training images", with_hash=True)
    test_scan = scan(test["path"].tolist(), "scan test images", with_hash=True) if test is not None else None
    report_bad(train_scan, test_scan, config.data.on_bad_image, findings)

    # Bad rows leave before the split is checked, exactly as training would drop them under skip.
    kept = train[~train["path"].isin(train_scan.bad)]
    table = split_table(args, config, kept, settings.splits, findings)
    fold = config.data.split.fold
    report_counts(dataset, table, fold if fold in set(table["fold"]) else int(table["fold"].min()))
    report_leaks(table, kept, findings)
    report_duplicates(train, train_scan, test, test_scan, dict(zip(table["id"], table["fold"])))
    report_sizes(train_scan, test_scan)
    if findings.problems:
        print(f"\n{len(findings.problems)} problem(s) found:")
        for text in findings.problems:
            print(f"  - {text}")
        return 1
    print("\nOK: no leaks and no blocking bad files")
    return 0

