"""A corrections file a person edits after a label audit: `id,action,label`, applied before the split is made.

`action` is `keep` (the label stands), `relabel` (`label` is the new class, by index or
name) or `drop` (the image leaves the training pool). `scripts.audit` pre-fills one for its
top suspects; `data.corrections: <path>` in a member config applies it in every source.
For the mask layout a relabel changes a photo's mask state on that photo only, but its
gender and age band are facts about the person, so they change on all of that person's
photos (and the log says so). What was applied is summarised in `Applied`, which the split
file and the registry entry record, so members on other corrections never vote together.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core import atomic
from core.errors import UserError
from core.hashing import sha256_file
from imagedata.mask import decode, encode

log = logging.getLogger("members")

ACTIONS = ("keep", "relabel", "drop")
COLUMNS = ("id", "action", "label")
NONE = "none"  # what a split file made without corrections records


@dataclass(frozen=True)
class Applied:
    """What one corrections file did to a training table."""
    file: str          # the path as the config gave it
    sha256: str
    keep: int
    relabel: int       # rows of the file with action relabel
    drop: int          # rows of the file with action drop
    changed: int       # training images whose label changed (a mask person's relabel changes up to 7)

    def setting(self) -> str:
        """One string for the split file's `corrections` column: the file's identity and counts."""
        return f"sha256={self.sha256};keep={self.keep};relabel={self.relabel};drop={self.drop};changed={self.changed}"

    def to_entry(self) -> dict:
        return {"file": self.file, "sha256": self.sha256, "keep": self.keep, "relabel": self.relabel,
                "drop": self.drop, "changed": self.changed}


def _row(path: Path, index: int) -> str:
    return f"corrections file {path} row {index + 2}"  # +2: the header is line 1


def _label(value: str, classes: list[str], where: str) -> int:
    value = value.strip()
    if value in classes:
        return classes.index(value)
    try:
        index = int(value)
    except ValueError:
        raise UserError(f"{where}: label '{value}' is not a class index or name") from None
    if not 0 <= index < len(classes):
        raise UserError(f"{where}: label {index} is out of range ({len(classes)} classes, 0..{len(classes) - 1})")
    return index


def read_corrections(path: Path, classes: list[str], ids: pd.Series) -> pd.DataFrame:
    """The file checked row by row against the data: columns id, action, label (int, -1 unless relabel)."""
    if not path.is_file():
        raise UserError(f"corrections file {path} does not exist (data.corrections)")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"corrections file {path} is not a readable CSV") from err
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"corrections file {path} lacks column(s) {', '.join(missing)} (expected id,action,label)")
    known = set(ids.astype(str))
    labels, seen = [], {}
    for index, row in table.iterrows():
        where = _row(path, index)
        image, action = row["id"].strip(), row["action"].strip().lower()
        if image not in known:
            raise UserError(f"{where}: id '{image}' is not a training image of this data")
        if image in seen:
            raise UserError(f"{where}: id '{image}' is listed again (first on row {seen[image] + 2})")
        seen[image] = index
        if action not in ACTIONS:
            raise UserError(f"{where}: action '{row['action']}' is not one of {', '.join(ACTIONS)}")
        labels.append(_label(row["label"], classes, where) if action == "relabel" else -1)
    return pd.DataFrame({"id": table["id"].str.strip(), "action": table["action"].str.strip().str.lower(),
                         "label": pd.Series(labels, dtype="int64")})


def _person_labels(train: pd.DataFrame, relabels: pd.DataFrame, path: Path) -> pd.Series:
    """Mask layout: new labels by id, the relabelled gender/age spread over each person's photos."""
    labels = train.set_index("id")["label"].copy()
    group = train.set_index("id")["group"]
    person_fix: dict[str, tuple[int, int, str]] = {}
    for row in relabels.itertuples(index=False):
        mask, gender, age = decode(int(row.label))
        person = group[row.id]
        earlier = person_fix.get(person)
        if earlier and earlier[:2] != (gender, age):
            raise UserError(f"corrections file {path}: '{row.id}' and '{earlier[2]}' give person '{person}' "
                            f"different gender/age; a person has one")
        person_fix[person] = (gender, age, row.id)
        labels[row.id] = encode(mask, gender, age)
    for person, (gender, age, source) in person_fix.items():
        photos = group.index[group == person]
        spread = 0
        for photo in photos:
            mask, old_gender, old_age = decode(int(labels[photo]))
            if (old_gender, old_age) != (gender, age):
                labels[photo] = encode(mask, gender, age)
                spread += 1
        if spread:
            log.info("corrections: the relabel of '%s' sets gender/age of person '%s' on all %d of their photos "
                     "(%d changed)", source, person, len(photos), spread)
    return labels


def apply_corrections(train: pd.DataFrame, classes: list[str], path: Path, given: str,
                      person_level: bool) -> tuple[pd.DataFrame, Applied]:
    """The training table with the file's relabels and drops applied; `person_level` for the mask layout."""
    fixes = read_corrections(path, classes, train["id"])
    relabels = fixes[fixes["action"] == "relabel"]
    drops = set(fixes.loc[fixes["action"] == "drop", "id"])
    if person_level:
        new = _person_labels(train, relabels, path)
    else:
        new = train.set_index("id")["label"].copy()
        new[relabels["id"].tolist()] = relabels["label"].to_numpy()
    out = train.assign(label=new.reindex(train["id"]).to_numpy().astype(train["label"].dtype))
    changed = int((out["label"].to_numpy() != train["label"].to_numpy()).sum())
    out = out[~out["id"].isin(drops)].reset_index(drop=True)
    applied = Applied(given, sha256_file(path), int((fixes["action"] == "keep").sum()), len(relabels), len(drops),
                      changed)
    log.info("corrections %s: %d relabel row(s) changed %d image label(s), %d image(s) dropped, %d kept as given",
             given, applied.relabel, changed, applied.drop, applied.keep)
    return out, applied


def write_template(path: Path, rows: pd.DataFrame) -> Path:
    """A corrections file from suggestions (id, action, label), written atomically."""
    with atomic.atomic_path(path) as tmp:
        rows.loc[:, list(COLUMNS)].to_csv(tmp, index=False)
    return path
