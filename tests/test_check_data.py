"""`python -m scripts.check_data`: counts, imbalance, bad files, duplicates, leaks and sizes."""
from __future__ import annotations

import pytest

from core.config import load_config
from imagedata.sources import load_dataset
from imagedata.splits import ensure_split
from scripts.check_data import main
from tests.helpers import REPO, run_script
from tests.mask_fixture import PEOPLE, plant_bad_files, write_mask_layout

pytestmark = pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")


@pytest.fixture
def fixture(tmp_path):
    return write_mask_layout(tmp_path / "mask")


def test_clean_data_passes_and_is_described(fixture, capsys):
    rc = main(["--config", str(REPO / "configs" / "mask" / "resnet18.yaml"), f"data.root={fixture.root}"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"training pool: {len(PEOPLE) * 7} images, {len(PEOPLE)} groups, 18 classes" in out
    assert "test list: 9 images" in out
    assert "previewing 5 stratified group folds" in out   # no split file yet: nothing written
    assert "incorrect-female-30to59" in out and "Class imbalance: largest/smallest class =" in out
    assert "none: each of 12 groups lies in exactly one fold" in out
    assert "24x32 (93)" in out                              # 84 training + 9 test images


def test_planted_leak_is_reported_with_a_non_zero_exit(fixture, tmp_path, isolated_env):
    cfg = load_config(None, ["data.source=mask", f"data.root={fixture.root}"]).data
    split = ensure_split(load_dataset(cfg, tmp_path).train, "mask-k3", 3, 42, isolated_env / "splits")
    table = split.table.copy()
    person = PEOPLE[5].path
    row = table.index[table["group"] == person][0]
    table.loc[row, "fold"] = (table.loc[row, "fold"] + 1) % 3   # one photo of one person moves fold
    table.to_csv(split.path, index=False)

    proc = run_script("check_data", "--source", "mask", "--root", str(fixture.root), "--split", "mask-k3",
                      check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"1 group(s) appear in more than one fold: '{person}' in folds" in proc.stdout
    assert "problem(s) found" in proc.stdout


def test_planted_bad_files_fail_under_error_and_pass_under_skip(fixture, capsys):
    bad = plant_bad_files(fixture.root, fixture)
    proc = run_script("check_data", "--source", "mask", "--root", str(fixture.root), check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for kind, path in bad.items():
        assert f"train  {path}:" in proc.stdout, kind
    assert "4 training file(s) cannot be decoded" in proc.stdout

    assert main(["--source", "mask", "--root", str(fixture.root), "--on-bad-image", "skip"]) == 0
    out = capsys.readouterr().out
    assert "4 training file(s) will be skipped" in out and f"training pool: {len(PEOPLE) * 7} images" in out


def test_bad_test_image_always_fails(fixture, capsys):
    (fixture.root / "eval" / "images" / fixture.eval_ids[3]).write_bytes(b"")
    rc = main(["--source", "mask", "--root", str(fixture.root), "--on-bad-image", "skip"])
    out = capsys.readouterr().out
    assert rc == 1 and f"test   {fixture.root / 'eval' / 'images' / fixture.eval_ids[3]}: empty file" in out


def test_byte_identical_duplicates_are_found(fixture, capsys):
    a, b = fixture.image(PEOPLE[0], "normal"), fixture.image(PEOPLE[7], "normal")
    b.write_bytes(a.read_bytes())
    rc = main(["--source", "mask", "--root", str(fixture.root), "--n-folds", "3"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "1 set(s), 2 files" in out
    assert f"train:{PEOPLE[0].path}/{a.name}" in out and f"train:{PEOPLE[7].path}/{b.name}" in out


def test_usage_mistakes_are_one_line_errors(fixture, capsys):
    assert main(["--source", "mask"]) == 2
    assert main(["--source", "mask", "--root", str(fixture.root), "--split", "nope"]) == 2
    err = capsys.readouterr().err
    assert "error: --source needs --root PATH" in err and "split file" in err and "nope.csv does not exist" in err
