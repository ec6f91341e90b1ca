"""The mask competition's layout (the competition's format notes) read into a training table.

<root>/train/train.csv lists one person per row (id,gender,race,age,path) and
<root>/train/images/<path>/ holds that person's 7 photos. People are keyed on
`path`, because ids repeat in real data; stems are matched whatever their
extension, and anything else in a folder (dot-files, Thumbs.db) is skipped.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from core.errors import UserError
from core.images import is_image_name
from core.names import name_problem

log = logging.getLogger("members")

MASK_OF_STEM = {"mask1": 0, "mask2": 0, "mask3": 0, "mask4": 0, "mask5": 0, "incorrect_mask": 1, "normal": 2}
GENDERS = {"male": 0, "female": 1}
TASKS = (("mask", 3), ("gender", 2), ("age", 3))
COMPOSITE = {"tasks": [{"name": name, "size": size} for name, size in TASKS]}
TRAIN_COLUMNS = ("id", "gender", "race", "age", "path")
_NAMES = (("wear", "incorrect", "notwear"), ("male", "female"), ("lt30", "30to59", "60plus"))
TASK_CLASSES = {name: list(names) for (name, _), names in zip(TASKS, _NAMES)}  # a task member's class names


def age_band(age: int) -> int:
    """< 30 -> 0, 30..59 -> 1, >= 60 -> 2."""
    return 0 if age < 30 else 1 if age < 60 else 2


def encode(mask: int, gender: int, age: int) -> int:
    """The 18-class label: mask * 6 + gender * 3 + age band."""
    return mask * 6 + gender * 3 + age


def decode(label: int) -> tuple[int, int, int]:
    """The inverse of `encode`: (mask, gender, age band)."""
    if not 0 <= label < 18:
        raise ValueError(f"mask-competition labels lie in 0..17, not {label}")
    return label // 6, label // 3 % 2, label % 3


# Class names in label order, e.g. "incorrect-female-30to59" for class 10.
CLASSES = [f"{_NAMES[0][m]}-{_NAMES[1][g]}-{_NAMES[2][a]}" for m, g, a in map(decode, range(18))]


def _row_error(csv: Path, index: int, text: str) -> UserError:
    return UserError(f"{csv} row {index + 2}: {text}")  # +2: the header is line 1


def read_people(csv: Path) -> pd.DataFrame:
    """train.csv validated row by row: path (unique), gender code, age band."""
    if not csv.is_file():
        raise UserError(f"mask data: {csv} does not exist (expected <root>/train/train.csv)")
    try:
        people = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"{csv} is not a readable CSV") from err
    missing = [c for c in TRAIN_COLUMNS if c not in people.columns]
    if missing:
        raise UserError(f"{csv} lacks column(s) {', '.join(missing)} (header: {', '.join(people.columns)})")
    rows = []
    seen: dict[str, int] = {}
    for index, row in people.iterrows():
        path = row["path"].strip()
        if not path:
            raise _row_error(csv, index, "empty 'path'")
        problem = name_problem(path)  # it names a folder inside train/images, never a path out of it
        if problem:
            raise _row_error(csv, index, f"path {path!r} {problem}")
        if path in seen:
            raise _row_error(csv, index, f"person '{path}' is listed again (first on row {seen[path] + 2})")
        seen[path] = index
        gender = GENDERS.get(row["gender"].strip().lower())
        if gender is None:
            raise _row_error(csv, index, f"gender '{row['gender']}' is neither male nor female")
        try:
            age = int(row["age"].strip())
        except ValueError:
            raise _row_error(csv, index, f"age '{row['age']}' is not a whole number") from None
        if age < 0:
            raise _row_error(csv, index, f"age {age} is negative")
        rows.append({"person": path, "row": index + 2, "gender": gender, "age": age_band(age)})
    if not rows:
        raise UserError(f"{csv} lists no people")
    return pd.DataFrame(rows)


def _person_images(folder: Path) -> tuple[list[tuple[Path, int]], int]:
    """(file, mask state) for each recognised stem, and how many other files were skipped."""
    found, skipped = [], 0
    for file in sorted(folder.iterdir()):
        state = MASK_OF_STEM.get(file.stem.lower()) if file.is_file() and is_image_name(file) else None
        if state is None:
            skipped += 1
        else:
            found.append((file, state))
    return found, skipped


def read_train(root: Path) -> pd.DataFrame:
    """One row per photo: id ('<path>/<file>'), path, label (0..17), group (the person's path)."""
    csv = root / "train" / "train.csv"
    people = read_people(csv)
    images = root / "train" / "images"
    rows, skipped, incomplete = [], 0, []
    for person in people.itertuples(index=False):
        folder = images / person.person
        if not folder.is_dir():
            raise UserError(f"{csv} row {person.row}: folder {folder} does not exist")
        found, n_skipped = _person_images(folder)
        skipped += n_skipped
        if len(found) != len(MASK_OF_STEM):
            incomplete.append(f"{person.person} ({len(found)})")
        for file, state in found:
            rows.append({"id": f"{person.person}/{file.name}", "path": str(file),
                         "label": encode(state, person.gender, person.age), "group": person.person})
    if skipped:
        log.debug("mask data: skipped %d files that are not one of the 7 photos (dot-files, Thumbs.db, ...)", skipped)
    if incomplete:
        log.warning("mask data: %d people do not have exactly 7 photos, e.g. %s", len(incomplete),
                    ", ".join(incomplete[:3]))
    if not rows:
        raise UserError(f"mask data under {images} holds no photos named mask1..5, incorrect_mask or normal")
    return pd.DataFrame(rows)
