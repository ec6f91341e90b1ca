"""A training list as a CSV: `path,label[,group]`, with paths relative to the CSV's folder.

Labels are class indices or class names. The class list comes from an optional
`classes.txt` beside the CSV (one name per line, in label order); without it,
integer labels mean classes 0..max and names are sorted. Without a `group`
column every image is its own group, so nothing keeps related images together.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pandas as pd

from core import files
from core.errors import UserError
from core.images import is_image_name

CLASSES_FILE = "classes.txt"
_INTEGER = re.compile(r"^\s*-?\d+\s*$")


def _class_sort_key(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _row(csv: Path, index: int) -> str:
    return f"{csv} row {index + 2}"  # +2: the header is line 1


def read_classes(csv: Path) -> list[str] | None:
    path = csv.parent / CLASSES_FILE
    if not path.exists():
        return None
    # files.read_text drops a BOM (some editors write one) so it cannot join the first class name.
    text = files.read_text(path, "class list", files.MiB)
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise UserError(f"{path} lists no classes")
    if len(set(names)) != len(names):
        raise UserError(f"{path} lists a class twice")
    return names


def _infer_classes(labels: pd.Series) -> list[str]:
    if labels.map(lambda v: bool(_INTEGER.match(v))).all():
        return [str(i) for i in range(max(0, int(labels.astype(int).max())) + 1)]
    return sorted(set(labels), key=_class_sort_key)


def _label_index(value: str, classes: list[str], where: str) -> int:
    if value in classes:  # a name wins over an index: class "3" in a named list means that name
        return classes.index(value)
    if _INTEGER.match(value):
        index = int(value)
        if 0 <= index < len(classes):
            return index
        raise UserError(f"{where}: label {index} is out of range ({len(classes)} classes, 0..{len(classes) - 1})")
    shown = ", ".join(classes[:10]) + (" ..." if len(classes) > 10 else "")
    raise UserError(f"{where}: label '{value}' is not a known class (known: {shown})")


def _read(csv: Path) -> pd.DataFrame:
    if csv.is_dir():
        raise UserError(f"training list {csv} is a folder (data.root must name the CSV file itself)")
    text = files.read_text(csv, "training list")  # a BOM is dropped, so the header reads 'path', not '\ufeffpath'
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise UserError(f"training list {csv} is not a readable CSV") from err
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise UserError(f"training list {csv} lacks column(s) {', '.join(missing)} "
                        f"(header: {', '.join(table.columns)})")
    if table.empty:
        raise UserError(f"training list {csv} has no rows")
    return table


def _check_cells(csv: Path, table: pd.DataFrame) -> None:
    for column in ("path", "label", "group"):
        if column in table.columns:
            empty = table.index[table[column].str.strip() == ""]
            if len(empty):
                raise UserError(f"{_row(csv, int(empty[0]))}: empty '{column}'")


def image_id(path: str) -> str:
    """The id of a listed path: normalised, so `imgs/a0.png`, `./imgs/a0.png` and `imgs//a0.png` are one image."""
    return Path(os.path.normpath(path.strip())).as_posix()


def _check_repeats(csv: Path, table: pd.DataFrame, ids: pd.Series) -> None:
    """A path listed twice (after normalising) is refused, naming both rows; with two labels it is a conflict."""
    repeated = ids.duplicated(keep="first")
    if not repeated.any():
        return
    index = int(table.index[repeated][0])
    first = int(table.index[ids == ids[index]][0])
    if table["label"][first].strip() != table["label"][index].strip():
        raise UserError(f"{_row(csv, index)}: '{table['path'][index]}' is image '{ids[index]}' of row {first + 2} "
                        f"with a conflicting label ('{table['label'][index].strip()}' vs "
                        f"'{table['label'][first].strip()}'); list each image once")
    raise UserError(f"{_row(csv, index)}: '{table['path'][index]}' is image '{ids[index]}', already listed "
                    f"on row {first + 2}; list each image once")


def _resolve_paths(csv: Path, table: pd.DataFrame) -> list[Path]:
    paths = [p if p.is_absolute() else csv.parent / p for p in (Path(v.strip()) for v in table["path"])]
    for index, path in enumerate(paths):
        if not is_image_name(path):
            raise UserError(f"{_row(csv, index)}: {path.name} is not a .jpg/.jpeg/.png/.webp file")
    missing = [i for i, p in enumerate(paths) if not p.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""
        raise UserError(f"{_row(csv, missing[0])}: image {paths[missing[0]]} does not exist{more}")
    return paths


def read_csv_list(csv: Path) -> tuple[list[str], pd.DataFrame]:
    """(classes, table with id, path, label, group) from a `path,label[,group]` CSV."""
    table = _read(csv)
    _check_cells(csv, table)
    ids = table["path"].map(image_id)
    _check_repeats(csv, table, ids)
    labels = table["label"].str.strip()
    classes = read_classes(csv) or _infer_classes(labels)
    label_ids = [_label_index(value, classes, _row(csv, i)) for i, value in enumerate(labels)]
    paths = _resolve_paths(csv, table)
    groups = table["group"].str.strip() if "group" in table.columns else ids
    return classes, pd.DataFrame({"id": ids, "path": [str(p) for p in paths], "label": label_ids,
                                  "group": groups.astype(str)})
