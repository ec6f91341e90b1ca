"""Every data source becomes the same thing: a table of image files with labels and groups.

`train` columns: id (unique str), path (absolute str), label (int), group (str; the unit
that must never straddle train and val, e.g. a person). `test` columns: id, path, in
the order of the list the submission must follow.

Sources (`data.source`): `digits` (embedded demo), `folder` (one sub-folder per class),
`csv` (`path,label[,group]`, see csv_source.py) and `mask` (the competition layout,
see mask.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.errors import UserError
from core.extensions import DATA_SOURCES
from core.images import is_image_name
from core.names import name_problem
from core.tables import read_ids_csv
from imagedata import csv_source, mask, tasks
from imagedata.corrections import Applied, apply_corrections
from imagedata.digits import ensure_digits


@dataclass
class Dataset:
    name: str
    root: Path
    classes: list[str]
    train: pd.DataFrame
    test: pd.DataFrame | None = None
    test_info: Path | None = None      # the info.csv a submission fills, in its row order
    test_labels: Path | None = None    # true test labels, only for embedded demo data
    composite: dict | None = None
    corrections: Applied | None = None  # data.corrections, applied to `train` before any split is made
    task_classes: dict[str, list[str]] | None = None  # class names of each task of `composite`, where the source has them
    task: dict | None = None           # a task member's view: {name, of: the composite layout} (imagedata/tasks.py)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _class_sort_key(name: str):
    # Numeric class folders sort as numbers ("2" before "10"), which is what users mean.
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _folder_group(rel: Path) -> str:
    # root/<class>/<group>/<file>: the sub-folder (e.g. a person) is the group, across classes too;
    # a file directly in its class folder is a group of its own.
    return rel.parts[1] if len(rel.parts) > 2 else rel.as_posix()


def read_image_folder(root: Path) -> tuple[list[str], pd.DataFrame]:
    """torchvision ImageFolder convention: root/<class>/<file>, or root/<class>/<group>/<file>."""
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist")
    classes = sorted((d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=_class_sort_key)
    if not classes:
        raise UserError(f"image folder {root} has no class sub-folders")
    rows = []
    for label, name in enumerate(classes):
        for path in sorted((root / name).rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and is_image_name(path) and not any(p.startswith(".") for p in rel.parts):
                rows.append({"id": rel.as_posix(), "path": str(path), "label": label, "group": _folder_group(rel)})
    if not rows:
        raise UserError(f"image folder {root} holds no .jpg/.jpeg/.png/.webp files")
    return classes, pd.DataFrame(rows)


def read_test_list(spec: Path) -> tuple[pd.DataFrame, Path | None]:
    """A test list is an info.csv (ImageID,ans beside images/) or a plain folder of images."""
    if spec.is_file():
        info = read_ids_csv(spec, "test list")
        if info.empty:
            raise UserError(f"test list {spec} has a header but no rows; a submission needs at least one test image")
        empty = info["ImageID"].str.strip() == ""
        if empty.any():
            row = int(info.index[empty][0]) + 2
            raise UserError(f"test list {spec} row {row} has an empty ImageID")
        for row, image_id in enumerate(info["ImageID"], start=2):
            problem = name_problem(image_id)  # it names a file inside images/, never a path out of it
            if problem:
                raise UserError(f"test list {spec} row {row}: ImageID {image_id!r} {problem}")
        repeated = info["ImageID"].duplicated()
        if repeated.any():
            row = int(info.index[repeated][0])
            raise UserError(f"test list {spec} row {row + 2}: ImageID '{info['ImageID'][row]}' is listed twice")
        images = spec.parent / "images"
        paths = [images / image_id for image_id in info["ImageID"]]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise UserError(f"test list {spec}: image {missing[0]} is missing{more}")
        return pd.DataFrame({"id": info["ImageID"].tolist(), "path": [str(p) for p in paths]}), spec
    if spec.is_dir():
        files = sorted(p for p in spec.iterdir() if p.is_file() and is_image_name(p))
        if not files:
            raise UserError(f"test folder {spec} holds no images")
        return pd.DataFrame({"id": [p.name for p in files], "path": [str(p) for p in files]}), None
    raise UserError(f"test list {spec} does not exist")


# Each loader takes the data root and the test list (or None) and returns the Dataset; registering one here is
# all a new source needs: the config check, `--help` and the error messages read DATA_SOURCES.
@DATA_SOURCES.register("digits", "scikit-learn digits written as PNGs (made on first use)")
def _digits(root: Path, test: Path | None) -> Dataset:
    ensure_digits(root)
    classes, train = read_image_folder(root / "train")
    test_df, info = read_test_list(test or root / "test" / "info.csv")
    labels = root / "test" / "labels.csv"
    return Dataset("digits", root, classes, train, test_df, info, labels if test is None else None)


@DATA_SOURCES.register("folder", "one sub-folder of images per class")
def _folder(root: Path, test: Path | None) -> Dataset:
    classes, train = read_image_folder(root)
    test_df, info = read_test_list(test) if test else (None, None)
    return Dataset("folder", root, classes, train, test_df, info)


@DATA_SOURCES.register("csv", "a CSV listing image paths and labels")
def _csv(root: Path, test: Path | None) -> Dataset:
    classes, train = csv_source.read_csv_list(root)
    test_df, info = read_test_list(test) if test else (None, None)
    return Dataset("csv", root.parent, classes, train, test_df, info)


@DATA_SOURCES.register("mask", "the mask competition's layout (persons, 18 composite classes)")
def _mask(root: Path, test: Path | None) -> Dataset:
    train = mask.read_train(root)
    test_df, info = read_test_list(test or root / "eval" / "info.csv")
    return Dataset("mask", root, list(mask.CLASSES), train, test_df, info, composite=dict(mask.COMPOSITE),
                   task_classes=dict(mask.TASK_CLASSES))


def resolve_path(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def load_dataset(data_cfg, data_root: Path, output_root: Path | None = None) -> Dataset:
    """Build the dataset a member config names; relative roots hang off the machine's data root.

    `data.corrections` (an audit's corrections file; relative paths hang off the output root, where
    audits are written) is applied here, so every source and every job sees the corrected labels."""
    if data_cfg.source not in DATA_SOURCES.names():
        raise UserError(f"data source '{data_cfg.source}' is not available "
                        f"(known: {', '.join(sorted(DATA_SOURCES.names()))})")
    root = resolve_path(data_cfg.root, data_root)
    # A csv source's root is the CSV file itself; its test list hangs off the CSV's folder.
    test = resolve_path(data_cfg.test, root.parent if root.is_file() else root) if data_cfg.test else None
    dataset = DATA_SOURCES.get(data_cfg.source)(root, test)
    if data_cfg.composite is not None:
        dataset.composite = data_cfg.composite
    _check_composite(dataset)
    corrections = getattr(data_cfg, "corrections", None)
    if corrections:
        if output_root is None:
            from core.settings import load_settings  # the jobs that know their settings pass output_root
            output_root = load_settings().output_root
        dataset.train, dataset.corrections = apply_corrections(
            dataset.train, dataset.classes, resolve_path(corrections, Path(output_root)), corrections,
            person_level=data_cfg.source == "mask")
    if getattr(data_cfg, "task", None):
        dataset = tasks.task_view(dataset, data_cfg.task)
    return dataset


class DatasetListing:
    """One job's memo of dataset listings: a data config shared by many members is listed once.

    Listing walks the data folder (and reads info.csv), which for a competition folder of
    thousands of files is the slowest step of a re-vote; a job holds one of these for its lifetime.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], Dataset] = {}

    def load(self, data_cfg, data_root: Path, output_root: Path | None = None) -> Dataset:
        key = (repr(data_cfg), str(data_root), str(output_root))
        if key not in self._seen:
            self._seen[key] = load_dataset(data_cfg, data_root, output_root)
        return self._seen[key]


def _check_composite(dataset: Dataset) -> None:
    if dataset.composite is None:
        return
    try:
        sizes = [int(task["size"]) for task in dataset.composite["tasks"]]
    except (KeyError, TypeError, ValueError) as err:
        raise UserError('data.composite must look like {tasks: [{name: mask, size: 3}, ...]}') from err
    product = 1
    for size in sizes:
        product *= size
    if product != dataset.num_classes:
        raise UserError(f"data.composite declares {product} classes ({' x '.join(map(str, sizes))}) "
                        f"but the {dataset.name} data has {dataset.num_classes}")
