"""Leak-free persisted splits, the split checks between members, and out-of-fold assembly."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from core.config import load_config
from core.entry import RegistryEntry
from core.errors import UserError
from core.registry import Registry
from imagedata.prescan import apply_policy
from imagedata.sources import load_dataset
from imagedata.splits import ensure_split, read_split
from jobs.inputs import check_compatible
from members.artifacts import save_probs
from predict.oof import assemble_oof, fold_group
from tests.helpers import run_script
from tests.mask_fixture import plant_bad_files, write_mask_layout

# Tiny fixtures leave some of the 18 classes with one person; sklearn says so, rightly, every time.
pytestmark = pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")


@pytest.fixture
def mask_data(tmp_path):
    fixture = write_mask_layout(tmp_path / "mask")
    cfg = load_config(None, ["data.source=mask", f"data.root={fixture.root}"]).data
    return fixture, load_dataset(cfg, tmp_path)


def persons_per_fold(table: pd.DataFrame) -> pd.Series:
    return table.groupby("group")["fold"].nunique()


@pytest.mark.parametrize("n_folds, seed", [(5, 42), (3, 7), (2, 0)])
def test_no_person_in_two_folds(mask_data, tmp_path, n_folds, seed):
    _, ds = mask_data
    split = ensure_split(ds.train, f"s{n_folds}", n_folds, seed, tmp_path / "splits")
    table = split.table
    assert sorted(table["fold"].unique()) == list(range(n_folds))
    assert (persons_per_fold(table) == 1).all()
    assert set(table["id"]) == set(ds.train["id"])
    for fold in range(n_folds):  # train and val of every fold share no person
        train, val = split.rows(fold, "train"), split.rows(fold, "val")
        assert not set(train["group"]) & set(val["group"])
        assert len(train) + len(val) == len(ds.train)


def test_csv_group_column_keeps_a_group_together(tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    rows = []
    for i in range(40):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(tmp_path / "imgs" / f"{i}.png")
        rows.append(f"imgs/{i}.png,{i % 2},g{i // 4}")
    (tmp_path / "train.csv").write_text("path,label,group\n" + "\n".join(rows) + "\n")
    ds = load_dataset(load_config(None, ["data.source=csv", f"data.root={tmp_path / 'train.csv'}"]).data, tmp_path)
    split = ensure_split(ds.train, "csv-k4", 4, 1, tmp_path / "splits")
    assert (persons_per_fold(split.table) == 1).all() and split.table["group"].nunique() == 10


def test_split_is_reused_and_refused_for_other_data(mask_data, tmp_path):
    _, ds = mask_data
    first = ensure_split(ds.train, "holdout", 4, 42, tmp_path / "splits")
    again = ensure_split(ds.train, "holdout", 4, 99, tmp_path / "splits")  # the file wins over a new seed
    assert again.sha256 == first.sha256
    with pytest.raises(UserError, match="made for different data .* 7 in it but not in the data"):
        ensure_split(ds.train.iloc[7:], "holdout", 4, 42, tmp_path / "splits")
    with pytest.raises(UserError, match="has 4 folds but the config asks for 5"):
        ensure_split(ds.train, "holdout", 5, 42, tmp_path / "splits")


def test_hand_edited_leak_is_refused_naming_the_person(mask_data, tmp_path):
    _, ds = mask_data
    split = ensure_split(ds.train, "leaky", 3, 42, tmp_path / "splits")
    table = split.table.copy()
    person = table["group"].iloc[0]
    row = table.index[table["group"] == person][0]
    table.loc[row, "fold"] = (table.loc[row, "fold"] + 1) % 3
    table.to_csv(split.path, index=False)
    with pytest.raises(UserError, match=f"leaks: 1 group.*'{person}' in folds"):
        ensure_split(ds.train, "leaky", 3, 42, tmp_path / "splits")


def test_skipped_rows_leave_before_the_split_is_made(mask_data, tmp_path):
    fixture, ds = mask_data
    bad = plant_bad_files(fixture.root, fixture)
    kept, skipped = apply_policy(ds.train, "skip", tmp_path / "cache")
    split = ensure_split(kept, "after-skip", 3, 42, tmp_path / "splits")
    assert set(skipped["path"]) == {str(p) for p in bad.values()}
    assert not set(split.table["id"]) & set(skipped["id"])
    assert len(split.table) == len(ds.train) - len(bad)


def entry(name: str, split: dict, arch: str = "resnet10t", classes=("a", "b", "c"), val_probs: str | None = None):
    return {"name": name, "arch": arch, "classes": list(classes), "weights": f"{name}.safetensors",
            "sha256": "0" * 64, "input": {"size": [8, 8], "mean": [0.5] * 3, "std": [0.25] * 3},
            "split": dict(split),
            "metrics": {"val_f1_macro": 0.5}, "config": f"{name}.yaml", "created": "2026-11-27T00:00:00Z",
            "val_probs": val_probs}


def test_same_split_name_with_different_files_is_refused_clearly():
    a = entry("r18-a", {"name": "holdout", "sha256": "a" * 64, "fold": 0, "n_folds": 5})
    b = entry("r18-b", {"name": "holdout", "sha256": "b" * 64, "fold": 0, "n_folds": 5})
    with pytest.raises(UserError) as err:
        check_compatible([RegistryEntry.from_dict(a, "a"), RegistryEntry.from_dict(b, "b")])
    message = str(err.value)
    assert "'r18-a' and 'r18-b' both claim split 'holdout'" in message and "aaaaaaaaaaaa" in message
    check_compatible([RegistryEntry.from_dict(e, "e") for e in (a, dict(b, split=a["split"]))])  # the same file: fine


@pytest.fixture
def fold_group_registry(mask_data, tmp_path):
    """A registry of 3 members, one per fold, with val_probs written the way training writes them."""
    _, ds = mask_data
    split = ensure_split(ds.train, "k3", 3, 42, tmp_path / "out" / "splits")
    registry = Registry(tmp_path / "out" / "registry.yaml")
    rng = np.random.default_rng(0)
    for fold in range(3):
        val = split.rows(fold, "val")
        probs = rng.dirichlet(np.ones(18), size=len(val)).astype(np.float32)
        path = tmp_path / "out" / "runs" / f"f{fold}" / "val_probs.npz"
        path.parent.mkdir(parents=True)
        save_probs(path, val["id"].tolist(), val["label"].to_numpy(), probs, np.log(probs))
        meta = {"name": "k3", "sha256": split.sha256, "fold": fold, "n_folds": 3}
        registry.add(entry(f"mask-r10t-f{fold}", meta, classes=ds.classes, val_probs=registry.relative(path)))
    return registry, split


def test_oof_covers_the_pool_once_in_split_order(fold_group_registry):
    registry, split = fold_group_registry
    oof = assemble_oof(fold_group(registry.members(), prefix="mask-r10t-f"), registry, split.path)
    assert oof.ids.tolist() == split.table["id"].tolist()
    np.testing.assert_array_equal(oof.folds, split.table["fold"].to_numpy())
    np.testing.assert_array_equal(oof.labels, split.table["label"].to_numpy())
    for fold, name in enumerate(oof.members):  # each row's probabilities are its own fold member's
        with np.load(registry.resolve(registry.get(name).val_probs)) as saved:
            rows = [oof.ids.tolist().index(i) for i in saved["ids"]]
            np.testing.assert_array_equal(oof.probs[rows], saved["probs"])
            assert (oof.folds[rows] == fold).all()


def test_oof_refuses_an_incomplete_group_naming_the_missing_fold(fold_group_registry):
    registry, _ = fold_group_registry
    entries = [e for e in registry.members() if e.split.fold != 1]
    with pytest.raises(UserError, match="incomplete fold group for split 'k3': fold 1 of 0..2 has no member"):
        assemble_oof(entries, registry)


def test_oof_refuses_members_whose_split_files_differ(fold_group_registry):
    registry, _ = fold_group_registry
    entries = registry.members()
    entries[2] = replace(entries[2], split=replace(entries[2].split, sha256="f" * 64))
    with pytest.raises(UserError, match="'mask-r10t-f0' and 'mask-r10t-f2' both name split 'k3' but were trained "
                                        "on different versions"):
        assemble_oof(entries, registry)


def test_oof_refuses_overlapping_validation_rows(fold_group_registry, tmp_path):
    registry, split = fold_group_registry
    entries = registry.members()
    # Fold 2's member claims fold 1's rows too: not out-of-fold any more.
    rows = split.table[split.table["fold"] >= 1]
    path = tmp_path / "out" / "overlap.npz"
    save_probs(path, rows["id"].tolist(), rows["label"].to_numpy(), np.full((len(rows), 18), 1 / 18, np.float32),
               np.zeros((len(rows), 18), np.float32))
    entries[2] = replace(entries[2], val_probs=registry.relative(path))
    with pytest.raises(UserError, match="validation rows of mask-r10t-f1 and mask-r10t-f2"):
        assemble_oof(entries, registry)


def test_oof_refuses_a_split_file_changed_since_training(fold_group_registry):
    registry, split = fold_group_registry
    split.path.write_text(split.path.read_text() + "\n")
    with pytest.raises(UserError, match="changed since the fold group was trained"):
        assemble_oof(registry.members(), registry, split.path)
    assert read_split(split.path).sha256 != split.sha256


def test_oof_command_writes_the_assembled_file(fold_group_registry, isolated_env):
    registry, split = fold_group_registry
    proc = run_script("oof", "--prefix", "mask-r10t-f")
    assert "all folds" in proc.stdout and "fold 2  mask-r10t-f2" in proc.stdout
    with np.load(isolated_env / "oof" / "mask-r10t-f.npz") as saved:
        assert saved["ids"].tolist() == split.table["id"].tolist()
        assert saved["members"].tolist() == ["mask-r10t-f0", "mask-r10t-f1", "mask-r10t-f2"]
    again = run_script("oof", "--prefix", "mask-r10t-f", check=False)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_a_split_scikit_learn_refuses_is_one_line_naming_the_folds():
    from imagedata.splits import make_folds

    table = pd.DataFrame({"group": [str(i) for i in range(6)], "label": [0, 1, 2, np.nan, 1, 0]})
    with pytest.raises(UserError, match=r"^cannot make 2 folds of 6 rows: ") as err:
        make_folds(table, 2, 0)
    assert "\n" not in str(err.value)
