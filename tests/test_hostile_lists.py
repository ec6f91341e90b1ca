"""Hostile training lists and split files: a BOM, one image under two spellings, random bytes."""
from __future__ import annotations

import os

import pandas as pd
import pytest
from PIL import Image

from core.config import load_config
from core.errors import UserError
from imagedata.sources import load_dataset
from imagedata.splits import ensure_split, read_split
from scripts.check_data import main as check_data


def _images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (12, 12), (20 * i, 90, 90)).save(folder / name, format="PNG")


def _load(csv):
    return load_dataset(load_config(None, ["data.source=csv", f"data.root={csv}"]).data, csv.parent)


def test_a_bom_joins_neither_the_first_class_nor_the_header(tmp_path):
    _images(tmp_path / "imgs", ["a0.png", "a1.png"])
    (tmp_path / "classes.txt").write_bytes("\ufeffcat\ndog\n".encode("utf-8"))
    csv = tmp_path / "train.csv"
    csv.write_bytes("\ufeffpath,label\nimgs/a0.png,cat\nimgs/a1.png,dog\n".encode("utf-8"))
    ds = _load(csv)
    assert ds.classes == ["cat", "dog"]
    assert ds.train["label"].tolist() == [0, 1]


def test_a_latin1_class_list_is_one_line_naming_it(tmp_path):
    _images(tmp_path / "imgs", ["a0.png"])
    (tmp_path / "classes.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    csv = tmp_path / "train.csv"
    csv.write_text("path,label\nimgs/a0.png,0\n")
    with pytest.raises(UserError, match=f"{tmp_path / 'classes.txt'} is not UTF-8 text"):
        _load(csv)


def _two_spellings(tmp_path, second_label):
    _images(tmp_path / "imgs", ["a0.png", "a1.png", "a2.png"])
    csv = tmp_path / "train.csv"
    csv.write_text(f"path,label\nimgs/a0.png,0\nimgs/a1.png,1\n./imgs/a0.png,{second_label}\nimgs/a2.png,1\n")
    return csv


def test_one_image_under_two_spellings_with_two_labels_is_refused_naming_both_rows(tmp_path):
    csv = _two_spellings(tmp_path, 1)
    with pytest.raises(UserError, match=r"row 4: './imgs/a0.png' is image 'imgs/a0.png' of row 2 "
                                        r"with a conflicting label \('1' vs '0'\)"):
        _load(csv)


def test_check_data_refuses_the_conflicting_list_in_one_line(tmp_path, capsys):
    csv = _two_spellings(tmp_path, 1)
    assert check_data(["--source", "csv", "--root", str(csv)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "conflicting label" in err[0] and "row 4" in err[0] and "row 2" in err[0]


def test_a_split_is_validated_before_it_is_written(tmp_path):
    train = pd.DataFrame({"id": ["a", "b", "a", "c"], "group": ["a", "b", "a", "c"], "label": [0, 1, 1, 0]})
    with pytest.raises(UserError, match="lists image 'a' twice; split .*poisoned.csv is not written"):
        ensure_split(train, "poisoned", 2, 0, tmp_path / "splits", duplicates="off")
    assert not (tmp_path / "splits" / "poisoned.csv").exists()   # the name is still free once the list is fixed


def test_a_split_file_of_random_bytes_is_one_line_naming_it(tmp_path):
    path = tmp_path / "noise.csv"
    path.write_bytes(b"\xff\xfe\x80" + os.urandom(2000))
    with pytest.raises(UserError, match=f"split file {path} is not UTF-8 text"):
        read_split(path)


def test_a_non_ascii_class_name_under_a_c_locale_is_no_traceback(tmp_path):
    from tests.helpers import run_script
    _images(tmp_path / "imgs", [f"a{i}.png" for i in range(8)])
    csv = tmp_path / "train.csv"
    csv.write_text("path,label\n" + "".join(f"imgs/a{i}.png,{'café' if i % 2 else 'thé'}\n" for i in range(8)),
                   encoding="utf-8")
    # An ASCII console: no UTF-8 locale, no UTF-8 mode, no PYTHONIOENCODING (empty counts as unset).
    env = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "", "PYTHONCOERCECLOCALE": "0"}
    proc = run_script("check_data", "--source", "csv", "--root", str(csv), "--n-folds", "2", env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "caf\\xe9" in proc.stdout
