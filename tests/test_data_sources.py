"""Data sources: the mask-competition layout, CSV lists, image folders and test lists."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.config import load_config
from core.errors import UserError
from ensemble.composite import CompositeSpec
from imagedata import mask
from imagedata.sources import load_dataset, read_image_folder, read_test_list
from tests.mask_fixture import PEOPLE, STEMS, write_mask_layout


def mask_config(root, *extra):
    return load_config(None, ["data.source=mask", f"data.root={root}", *extra]).data


@pytest.fixture
def fixture(tmp_path):
    return write_mask_layout(tmp_path / "mask")


def test_mask_layout_labels_every_photo_as_the_spec_says(fixture, tmp_path):
    ds = load_dataset(mask_config(fixture.root), tmp_path)
    expected = fixture.expected_tasks()
    # 7 photos per person; dot-files and Thumbs.db are not photos.
    assert sorted(ds.train["id"]) == sorted(expected)
    for row in ds.train.itertuples():
        m, g, a = expected[row.id]
        assert row.label == m * 6 + g * 3 + a, row.id          # the spec's formula
        assert mask.decode(row.label) == (m, g, a), row.id
    assert ds.num_classes == 18 and len(set(ds.classes)) == 18
    states = {mask.decode(label)[0] for label in ds.train["label"]}
    assert states == {0, 1, 2}


def test_composite_declaration_decodes_into_the_three_tasks(fixture, tmp_path):
    ds = load_dataset(mask_config(fixture.root), tmp_path)
    assert ds.composite == {"tasks": [{"name": "mask", "size": 3}, {"name": "gender", "size": 2},
                                      {"name": "age", "size": 3}]}
    spec = CompositeSpec.from_dict(ds.composite)
    tasks = spec.decode(ds.train["label"].to_numpy())
    expected = fixture.expected_tasks()
    np.testing.assert_array_equal(tasks, np.array([expected[i] for i in ds.train["id"]]))
    np.testing.assert_array_equal(spec.encode(tasks), ds.train["label"].to_numpy())


@pytest.mark.parametrize("age, band", [(0, 0), (29, 0), (30, 1), (59, 1), (60, 2), (99, 2)])
def test_age_bands_at_their_boundaries(age, band):
    assert mask.age_band(age) == band


def test_people_are_keyed_on_path_not_id(fixture, tmp_path):
    ds = load_dataset(mask_config(fixture.root), tmp_path)
    assert ds.train["group"].nunique() == len(PEOPLE)
    twins = [p.path for p in PEOPLE if p.id == "000600"]
    assert len(twins) == 2
    for path in twins:
        assert (ds.train["group"] == path).sum() == len(STEMS)
    assert ds.train["path"].map(lambda p: p.rsplit(".", 1)[1]).nunique() > 3  # mixed extensions and cases


def test_mask_test_list_comes_from_eval_info_in_order(fixture, tmp_path):
    ds = load_dataset(mask_config(fixture.root), tmp_path)
    assert ds.test["id"].tolist() == fixture.eval_ids
    assert ds.test_info == fixture.info_csv


@pytest.mark.parametrize("column, value, message", [
    ("gender", "unknown", "gender 'unknown'"),
    ("age", "forty", "age 'forty'"),
    ("path", "000099_male_Asian_40", "does not exist"),
])
def test_mask_csv_mistakes_name_the_row(fixture, tmp_path, column, value, message):
    csv = fixture.root / "train" / "train.csv"
    people = pd.read_csv(csv, dtype=str)
    people.loc[4, column] = value
    people.to_csv(csv, index=False)
    with pytest.raises(UserError, match=message) as err:
        load_dataset(mask_config(fixture.root), tmp_path)
    assert f"{csv} row 6" in str(err.value)


def test_mask_person_listed_twice_is_refused(fixture, tmp_path):
    csv = fixture.root / "train" / "train.csv"
    people = pd.read_csv(csv, dtype=str)
    pd.concat([people, people.iloc[[2]]]).to_csv(csv, index=False)
    with pytest.raises(UserError, match=f"row {len(people) + 2}: person '{PEOPLE[2].path}' is listed again"):
        load_dataset(mask_config(fixture.root), tmp_path)


def write_images(folder, names, colour=(90, 90, 90)):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        fmt = "PNG" if name.lower().endswith(".png") else "JPEG"
        Image.new("RGB", (12, 16), colour).save(folder / name, format=fmt)


def csv_config(csv, *extra):
    return load_config(None, ["data.source=csv", f"data.root={csv}", *extra]).data


def test_csv_list_with_integer_labels_groups_and_relative_paths(tmp_path):
    write_images(tmp_path / "lists" / "imgs", ["a.jpg", "b.PNG", "c.jpeg", "d.png"])
    csv = tmp_path / "lists" / "train.csv"
    csv.write_text("path,label,group\nimgs/a.jpg,2,p1\nimgs/b.PNG,0,p1\nimgs/c.jpeg,1,p2\nimgs/d.png,2,p3\n")
    ds = load_dataset(csv_config("lists/train.csv"), tmp_path)  # relative to the data root
    assert ds.classes == ["0", "1", "2"]
    assert ds.train["label"].tolist() == [2, 0, 1, 2]
    assert ds.train["group"].tolist() == ["p1", "p1", "p2", "p3"]
    names = ("a.jpg", "b.PNG", "c.jpeg", "d.png")
    assert ds.train["path"].tolist() == [str(tmp_path / "lists" / "imgs" / n) for n in names]


def test_csv_list_with_class_names_and_a_classes_file(tmp_path):
    write_images(tmp_path / "imgs", ["a.jpg", "b.jpg", "c.jpg"])
    (tmp_path / "classes.txt").write_text("dog\ncat\nbird\n")
    csv = tmp_path / "train.csv"
    csv.write_text("path,label\nimgs/a.jpg,cat\nimgs/b.jpg,bird\nimgs/c.jpg,0\n")
    ds = load_dataset(csv_config(csv), tmp_path)
    assert ds.classes == ["dog", "cat", "bird"]
    assert ds.train["label"].tolist() == [1, 2, 0]
    assert ds.train["group"].tolist() == ds.train["id"].tolist()  # no group column: each image alone


@pytest.mark.parametrize("label, message", [("3", "label 3 is out of range"), ("horse", "label 'horse' is not a known"),
                                            ("-1", "label -1 is out of range")])
def test_csv_bad_label_names_the_row(tmp_path, label, message):
    write_images(tmp_path / "imgs", ["a.jpg", "b.jpg"])
    (tmp_path / "classes.txt").write_text("dog\ncat\nbird\n")
    csv = tmp_path / "train.csv"
    csv.write_text(f"path,label\nimgs/a.jpg,cat\nimgs/b.jpg,{label}\n")
    with pytest.raises(UserError, match=message) as err:
        load_dataset(csv_config(csv), tmp_path)
    assert f"{csv} row 3" in str(err.value)


@pytest.mark.parametrize("body, message", [
    ("path,label\nimgs/a.jpg,0\nimgs/missing.jpg,1\n", "row 3: image .*missing.jpg does not exist"),
    ("path,label\nimgs/a.jpg,0\nimgs/a.jpg,1\n", "row 3: 'imgs/a.jpg' is image 'imgs/a.jpg' of row 2 with a conflicting"),
    ("path,label\nimgs/a.jpg,0\n./imgs/a.jpg,0\n", "row 3: './imgs/a.jpg' is image 'imgs/a.jpg', already listed on row 2"),
    ("path,label\nimgs/a.jpg,0\nnotes.txt,1\n", "row 3: notes.txt is not a"),
    ("path,group\nimgs/a.jpg,0\n", "lacks column.*label"),
    ("path,label,group\nimgs/a.jpg,0,\n", "row 2: empty 'group'"),
])
def test_csv_list_mistakes_are_named(tmp_path, body, message):
    write_images(tmp_path / "imgs", ["a.jpg"])
    csv = tmp_path / "train.csv"
    csv.write_text(body)
    with pytest.raises(UserError, match=message):
        load_dataset(csv_config(csv), tmp_path)


def test_image_folder_groups_by_sub_folder_across_classes(tmp_path):
    write_images(tmp_path / "pets" / "cat", ["x.JPG", ".hidden.jpg", "Thumbs.db"])
    write_images(tmp_path / "pets" / "cat" / "anna", ["1.png"])
    write_images(tmp_path / "pets" / "dog" / "anna", ["2.jpeg"])
    classes, train = read_image_folder(tmp_path / "pets")
    assert classes == ["cat", "dog"]
    assert sorted(train["id"]) == ["cat/anna/1.png", "cat/x.JPG", "dog/anna/2.jpeg"]
    groups = dict(zip(train["id"], train["group"]))
    assert groups["cat/anna/1.png"] == groups["dog/anna/2.jpeg"] == "anna"
    assert groups["cat/x.JPG"] == "cat/x.JPG"


def test_test_list_as_a_folder_of_images(tmp_path):
    write_images(tmp_path / "test", ["b.PNG", "a.jpg", "._a.jpg", "Thumbs.db"])
    test, info = read_test_list(tmp_path / "test")
    assert test["id"].tolist() == ["a.jpg", "b.PNG"] and info is None


def test_test_list_with_a_repeated_image_id_is_refused(fixture):
    info = pd.read_csv(fixture.info_csv, dtype=str)
    pd.concat([info, info.iloc[[1]]]).to_csv(fixture.info_csv, index=False)
    with pytest.raises(UserError, match=f"row {len(info) + 2}: ImageID '{info['ImageID'][1]}' is listed twice"):
        read_test_list(fixture.info_csv)


def test_composite_that_does_not_fit_the_classes_is_refused(tmp_path):
    write_images(tmp_path / "imgs", ["a.jpg", "b.jpg"])
    csv = tmp_path / "train.csv"
    csv.write_text("path,label\nimgs/a.jpg,0\nimgs/b.jpg,3\n")
    cfg = csv_config(csv)
    cfg.composite = {"tasks": [{"name": "a", "size": 3}, {"name": "b", "size": 2}]}
    with pytest.raises(UserError, match="declares 6 classes .* has 4"):
        load_dataset(cfg, tmp_path)
