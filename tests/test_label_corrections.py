"""Corrections files (imagedata/corrections.py): checked row by row, applied in every source before the split,
recorded in the split file; a mask person's gender/age relabel changes all seven photos."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.config import DataConfig
from core.entry import RegistryEntry
from core.errors import UserError
from imagedata import mask
from imagedata.corrections import apply_corrections
from imagedata.sources import load_dataset
from imagedata.splits import ensure_split
from jobs.inputs import check_same_corrections
from mask_fixture import PEOPLE, STEMS, write_mask_layout

CLASSES = [str(i) for i in range(10)]


def _train(n: int = 12) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"img{i}.png" for i in range(n)], "path": [f"/x/img{i}.png" for i in range(n)],
                         "label": [i % 10 for i in range(n)], "group": [f"img{i}.png" for i in range(n)]})


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("id,action,label\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("row, expected", [
    ("ghost.png,relabel,3", "row 3: id 'ghost.png' is not a training image"),
    ("img2.png,rename,3", "row 3: action 'rename' is not one of keep, relabel, drop"),
    ("img2.png,relabel,10", "row 3: label 10 is out of range (10 classes, 0..9)"),
    ("img2.png,relabel,seven", "row 3: label 'seven' is not a class index or name"),
    ("img1.png,drop,", "row 3: id 'img1.png' is listed again (first on row 2)"),
])
def test_a_bad_row_is_one_line_naming_it(tmp_path, row, expected):
    path = _write(tmp_path / "corrections.csv", ["img1.png,keep,", row])
    with pytest.raises(UserError) as err:
        apply_corrections(_train(), CLASSES, path, "corrections.csv", person_level=False)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and expected in message


def test_relabel_and_drop_are_applied_and_counted(tmp_path):
    path = _write(tmp_path / "c.csv", ["img1.png,relabel,7", "img2.png,drop,", "img3.png,keep,", "img4.png,relabel,4"])
    train = _train()
    out, applied = apply_corrections(train, CLASSES, path, "c.csv", person_level=False)
    labels = out.set_index("id")["label"]
    assert labels["img1.png"] == 7 and "img2.png" not in labels.index and labels["img3.png"] == 3
    assert len(out) == len(train) - 1
    # img4 is relabelled to the label it already had: a relabel row, but no label changed
    assert (applied.keep, applied.relabel, applied.drop, applied.changed) == (1, 2, 1, 1)
    assert applied.setting().startswith(f"sha256={applied.sha256};")


def test_a_mask_relabel_of_one_photo_changes_the_persons_seven_photos(tmp_path, caplog):
    fixture = write_mask_layout(tmp_path / "mask")
    person = PEOPLE[0]                       # female, < 30
    photo = f"{person.path}/mask1{STEMS['mask1'][1]}"
    new = mask.encode(0, 0, 2)               # worn, male, 60+
    path = _write(tmp_path / "c.csv", [f"{photo},relabel,{mask.CLASSES[new]}"])
    before = mask.read_train(fixture.root)
    with caplog.at_level("INFO"):   # through the mask source, as training and prediction list it
        data = load_dataset(DataConfig(source="mask", root=str(fixture.root), corrections=str(path)), tmp_path)
    out, applied = data.train, data.corrections
    mine = out[out["group"] == person.path]
    assert len(mine) == 7
    for row in mine.itertuples():
        state = STEMS[Path(row.id).stem][0]
        assert mask.decode(row.label) == (state, 0, 2)   # each photo keeps its own mask state
    assert applied.changed == 7 and applied.relabel == 1
    others = out[out["group"] != person.path].set_index("id")["label"]
    assert others.equals(before[before["group"] != person.path].set_index("id")["label"])
    assert any("all 7 of their photos" in r.message and person.path in r.message for r in caplog.records)


def test_conflicting_gender_for_one_person_is_refused(tmp_path):
    fixture = write_mask_layout(tmp_path / "mask")
    p = PEOPLE[1].path
    path = _write(tmp_path / "c.csv", [f"{p}/mask1{STEMS['mask1'][1]},relabel,{mask.encode(0, 1, 1)}",
                                       f"{p}/normal{STEMS['normal'][1]},relabel,{mask.encode(2, 0, 1)}"])
    with pytest.raises(UserError, match="different gender/age"):
        apply_corrections(mask.read_train(fixture.root), list(mask.CLASSES), path, "c.csv", person_level=True)


def test_every_source_applies_it_and_the_split_records_it(tmp_path, digits_root):
    path = tmp_path / "out" / "audits" / "a" / "corrections.csv"
    path.parent.mkdir(parents=True)
    plain = load_dataset(DataConfig(source="folder", root=str(digits_root / "train")), tmp_path)
    first = plain.train["id"].iloc[0]
    label = (int(plain.train["label"].iloc[0]) + 1) % 10
    _write(path, [f"{first},relabel,{label}", f"{plain.train['id'].iloc[1]},drop,"])
    cfg = DataConfig(source="folder", root=str(digits_root / "train"), corrections="audits/a/corrections.csv")
    data = load_dataset(cfg, tmp_path, tmp_path / "out")   # relative to the output root
    assert data.train.set_index("id")["label"][first] == label and len(data.train) == len(plain.train) - 1
    csv = tmp_path / "list.csv"
    plain.train.assign(path=plain.train["path"]).loc[:, ["path", "label"]].to_csv(csv, index=False)
    listed = load_dataset(DataConfig(source="csv", root=str(csv)), tmp_path)
    _write(path, [f"{listed.train['id'].iloc[0]},relabel,{label}"])
    fixed = load_dataset(DataConfig(source="csv", root=str(csv), corrections=str(path)), tmp_path)
    assert fixed.train["label"].iloc[0] == label and fixed.corrections.relabel == 1

    split = ensure_split(fixed.train, "s", 3, 0, tmp_path / "splits", "off", corrections=fixed.corrections.setting())
    table = pd.read_csv(split.path)
    assert (table["corrections"] == fixed.corrections.setting()).all() and fixed.corrections.sha256 in split.corrections
    with pytest.raises(UserError, match="made with corrections .* but this member asks for none"):
        ensure_split(listed.train, "s", 3, 0, tmp_path / "splits", "off")


def _entry(name: str, corrections: dict | None) -> dict:
    data = {"name": name, "arch": "resnet18", "classes": CLASSES, "weights": f"runs/{name}/best.safetensors",
            "sha256": "a" * 64, "input": {"size": [16, 16], "mean": [0.5] * 3, "std": [0.5] * 3},
            "split": {"name": "s", "sha256": "b" * 64, "fold": 0, "n_folds": 3}, "metrics": {"val_f1_macro": 0.9},
            "config": f"runs/{name}/config.yaml", "created": "2026-12-04T00:00:00Z"}
    if corrections:
        data["corrections"] = corrections
    return data


def test_the_entry_types_corrections_and_a_vote_refuses_mixed_ones():
    fix = {"file": "audits/a/corrections.csv", "sha256": "c" * 64, "keep": 1, "relabel": 2, "drop": 0, "changed": 2}
    entry = RegistryEntry.from_dict(_entry("a", fix), "entry")
    assert entry.corrections.relabel == 2 and entry.to_dict()["corrections"] == fix
    assert "corrections" not in RegistryEntry.from_dict(_entry("n", None), "entry").to_dict()
    with pytest.raises(UserError, match="field 'corrections'"):
        RegistryEntry.from_dict(_entry("b", {**fix, "sha256": "x"}), "entry")
    typed = {n: RegistryEntry.from_dict(_entry(n, c), "entry") for n, c in (("a", fix), ("b", fix), ("n", None))}
    check_same_corrections([typed["a"], typed["b"]])
    with pytest.raises(UserError) as err:
        check_same_corrections([typed["a"], typed["n"]])
    assert "'a' and 'n'" in str(err.value) and "different label corrections" in str(err.value)
