"""Duplicates grouped before the split: hashes, the neighbour search, union-find, the split file, check_data."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from core import files
from core.config import load_config
from core.errors import UserError
from core.registry import Registry
from imagedata.duplicates import absorb, all_pairs, duplicate_links, exact_sets, hash_file, near_pairs
from imagedata.prescan import file_hashes
from imagedata.sources import load_dataset
from imagedata.splits import ensure_split, read_split
from report.builder import split_line
from scripts.check_data import main as check_data_main
from tests.duplicates_fixture import copy_of, scene
from tests.helpers import REPO

pytestmark = pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")

# original (class/group/file) -> (kind, where its copy goes): every copy lands in another group, most in another class.
PLANTED = {
    "c0/g00/0.png": ("exact", "c1/g07/copy_exact.png"),
    "c0/g01/0.png": ("jpeg", "c2/g13/copy_jpeg.jpg"),
    "c1/g06/0.png": ("resized", "c0/g02/copy_resized.png"),
    "c2/g12/0.png": ("crop", "c1/g08/copy_crop.png"),
    "c1/g09/0.png": ("flipped", "c2/g14/copy_flipped.png"),   # a control: a mirror image is another picture
}


@pytest.fixture
def planted(tmp_path):
    """An image folder root/<class>/<group>/<file>: 3 classes x 6 groups x 2 scenes, plus the PLANTED copies."""
    root = tmp_path / "photos"
    rng = np.random.default_rng(7)
    for c in range(3):
        for g in range(6):
            folder = root / f"c{c}" / f"g{c * 6 + g:02d}"
            folder.mkdir(parents=True)
            for i in range(2):
                scene(rng).save(folder / f"{i}.png")
    for original, (kind, copy) in PLANTED.items():
        copy_of(root / original, kind, root / copy)
    return root


def folder_data(root, *overrides):
    config = load_config(None, ["data.source=folder", f"data.root={root}", *overrides])
    return config, load_dataset(config.data, root.parent).train


def copies(kinds=("exact", "jpeg", "resized", "crop")):
    return [(original, copy) for original, (kind, copy) in PLANTED.items() if kind in kinds]


def test_phash_matches_copies_but_not_mirrors_or_flat_pictures(planted, tmp_path):
    hashes = {rel: hash_file(planted / rel) for pair in PLANTED.items() for rel in (pair[0], pair[1][1])}
    for original, (kind, copy) in PLANTED.items():
        a, b = int(hashes[original][1], 16), int(hashes[copy][1], 16)
        distance = bin(a ^ b).count("1")
        if kind == "flipped":
            assert distance > 16, (kind, distance)
        else:
            assert distance <= 8, (kind, distance)
    assert hashes["c0/g00/0.png"][0] == hashes["c1/g07/copy_exact.png"][0]          # the same bytes
    assert hashes["c0/g01/0.png"][0] != hashes["c2/g13/copy_jpeg.jpg"][0]
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "flat.png")
    assert hash_file(tmp_path / "flat.png")[1] is None      # no structure to hash: matched by its bytes only
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a picture")
    assert hash_file(tmp_path / "bad.jpg")[1] is None


def test_exif_rotation_is_applied_before_hashing(planted, tmp_path):
    with Image.open(planted / "c0/g00/0.png") as img:
        upright = img.convert("RGB")
    upright.save(tmp_path / "upright.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view": the pixels are stored turned the other way
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "turned.jpg", quality=95, exif=exif)
    a, b = (int(hash_file(tmp_path / n)[1], 16) for n in ("upright.jpg", "turned.jpg"))
    assert bin(a ^ b).count("1") <= 4


@pytest.mark.parametrize("distance", [0, 3, 8, 12])
def test_multi_index_search_finds_exactly_the_pairs_all_pairs_finds(distance):
    rng = np.random.default_rng(distance)
    base = rng.integers(0, 2**63, 300, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 300).astype(np.uint64)
    # Plant neighbours at every distance around the threshold, so both sides of it are exercised.
    near = []
    for k in range(120):
        flips = rng.choice(64, size=k % (distance + 3), replace=False)
        near.append(base[k] ^ np.uint64(sum(1 << int(b) for b in flips)))
    codes = np.concatenate([base, np.array(near, dtype=np.uint64)])
    found = near_pairs(codes, distance)
    expected = all_pairs(codes, distance)
    assert len(expected) >= 40
    np.testing.assert_array_equal(found, expected)
    valid = np.ones(len(codes), dtype=bool)
    valid[:10] = False  # rows without a hash take part in nothing
    assert not np.isin(near_pairs(codes, distance, valid)[:, :2], np.arange(10)).any()


def test_union_find_joins_groups_through_chains_of_copies():
    groups = pd.Series(["p3", "p3", "p1", "p2", "p4", "p5"])
    # row 1 (p3) ~ row 2 (p1), row 2 ~ row 3 (p2): p1, p2 and p3 become one group named p1; p4, p5 stay.
    result = absorb(groups, np.array([[1, 2], [3, 2]]))
    assert result.groups.tolist() == ["p1", "p1", "p1", "p1", "p4", "p5"]
    assert result.merged == 2 and result.sets == 1
    links = duplicate_links(["a", "b", "a", None], [None, None, None, None], "near", 8)
    assert links.tolist() == [[0, 2]] and exact_sets(["a", "b", "a", None]) == [[0, 2]]
    assert len(duplicate_links(["a", "b", "a", None], [None] * 4, "off", 8)) == 0


def test_split_keeps_every_duplicate_set_in_one_fold(planted, tmp_path):
    config, train = folder_data(planted)
    assert config.data.duplicates == "near" and config.data.near_duplicate_distance == 8
    split = ensure_split(train, "dedup", 3, 0, tmp_path / "splits", cache_dir=tmp_path / "cache")
    table = split.table.set_index("id")
    for original, copy in copies():
        assert table.loc[original, "fold"] == table.loc[copy, "fold"], (original, copy)
        assert table.loc[original, "group"] == table.loc[copy, "group"]
    assert table.groupby("group")["fold"].nunique().max() == 1     # a merged group never straddles folds
    flipped, mirror = "c1/g09/0.png", "c2/g14/copy_flipped.png"
    assert table.loc[flipped, "group"] != table.loc[mirror, "group"]
    assert split.duplicates == "near<=8" and split.merged_groups == 4
    assert set(read_split(split.path).table["duplicates"]) == {"near<=8"}

    # The same data split without grouping puts a copy on the other side: what the grouping prevents.
    off = ensure_split(train, "plain", 3, 0, tmp_path / "splits", duplicates="off").table.set_index("id")
    assert any(off.loc[a, "fold"] != off.loc[b, "fold"] for a, b in copies())


def test_exact_setting_joins_only_byte_identical_copies(planted, tmp_path):
    _, train = folder_data(planted)
    split = ensure_split(train, "exact", 3, 0, tmp_path / "splits", duplicates="exact")
    table = split.table.set_index("id")
    assert split.duplicates == "exact" and split.merged_groups == 1
    assert table.loc["c0/g00/0.png", "group"] == table.loc["c1/g07/copy_exact.png", "group"]
    assert table.loc["c0/g01/0.png", "group"] != table.loc["c2/g13/copy_jpeg.jpg", "group"]


def test_another_setting_on_an_existing_split_is_refused(planted, tmp_path):
    _, train = folder_data(planted)
    ensure_split(train, "shared", 3, 0, tmp_path / "splits")
    with pytest.raises(UserError, match=r"shared.csv was made with data.duplicates near<=8 but this member asks "
                                        r"for off; .*use a new split name"):
        ensure_split(train, "shared", 3, 0, tmp_path / "splits", duplicates="off")
    with pytest.raises(UserError, match="near<=8 but this member asks for near<=6"):
        ensure_split(train, "shared", 3, 0, tmp_path / "splits", distance=6)
    # A split file from before the setting existed has neither column: it grouped nothing, so it reads as off.
    old = ensure_split(train, "old", 3, 0, tmp_path / "splits", duplicates="off")
    old.table[["id", "group", "label", "fold"]].to_csv(old.path, index=False)
    assert read_split(old.path).duplicates == "off" and read_split(old.path).merged_groups == 0
    with pytest.raises(UserError, match="old.csv was made with data.duplicates off but this member asks for near<=8"):
        ensure_split(train, "old", 3, 0, tmp_path / "splits")


def test_a_file_replaced_by_a_copy_after_the_split_is_refused(planted, tmp_path):
    _, train = folder_data(planted)
    split = ensure_split(train, "later", 3, 0, tmp_path / "splits")
    table = split.table.set_index("id")
    other = next(i for i in table.index if table.loc[i, "fold"] != table.loc["c0/g03/0.png", "fold"])
    (planted / other).write_bytes((planted / "c0/g03/0.png").read_bytes())   # same name, now a copy
    with pytest.raises(UserError, match="later.csv leaks through duplicates: 1 set"):
        ensure_split(train, "later", 3, 0, tmp_path / "splits")


def test_hashes_are_cached_by_file_fingerprint(planted, tmp_path):
    _, train = folder_data(planted)
    paths = train["path"].tolist()
    first = file_hashes(paths, tmp_path / "cache")
    [cached] = (tmp_path / "cache" / "hashes").glob("*.json")
    stored = json.loads(cached.read_text())
    assert stored["sha256"] == first[0] and stored["phash"] == first[1]
    stored["phash"][0] = "0123456789abcdef"   # proves the second call reads the file instead of hashing
    cached.write_text(json.dumps(stored))
    assert file_hashes(paths, tmp_path / "cache")[1][0] == "0123456789abcdef"
    Image.new("RGB", (9, 9)).save(paths[0])   # a changed file is a new fingerprint: hashed afresh
    again = file_hashes(paths, tmp_path / "cache")
    assert again[1][0] is None and again[0][0] != first[0][0]


def test_check_data_reports_a_split_that_leaks_through_duplicates(planted, tmp_path, isolated_env, capsys):
    _, train = folder_data(planted)
    ensure_split(train, "nodedup", 3, 0, isolated_env / "splits", duplicates="off")
    args = ["--source", "folder", "--root", str(planted), "--split", "nodedup", "--n-folds", "3"]
    rc = check_data_main([*args, "--sheet", str(tmp_path / "sheet.png")])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "made with data.duplicates off (0 group(s) merged" in out
    assert "exact (byte-identical): 1 set(s), 2 files" in out
    assert "near (re-encoded, resized, cropped; within 8 bits): 3 set(s), 6 files" in out
    assert "spanning folds after grouping (data.duplicates near<=8): 0 set(s); 4 group(s) would merge" in out
    assert "nodedup.csv (made with data.duplicates off) leaks through duplicates:" in out
    assert "train:c1/g08/copy_crop.png" in out and "copy_flipped" not in out
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.height > 3 * 160    # one row per near pair
    assert "contact sheet:" in out and "(3 of 3 near pair(s)" in out

    assert check_data_main([*args, "--allow-duplicate-leaks"]) == 0
    assert "allowed by --allow-duplicate-leaks" in capsys.readouterr().out

    ensure_split(train, "dedup", 3, 0, isolated_env / "splits")   # the default: grouped, nothing leaks
    assert check_data_main(["--source", "folder", "--root", str(planted), "--split", "dedup", "--n-folds", "3"]) == 0
    assert "spanning folds under" in capsys.readouterr().out


def test_check_data_shows_train_test_overlap(planted, tmp_path, capsys):
    test = tmp_path / "test_images"
    test.mkdir()
    copy_of(planted / "c2/g15/1.png", "jpeg", test / "t0.jpg")
    copy_of(planted / "c0/g04/1.png", "flipped", test / "t1.png")
    rc = check_data_main(["--source", "folder", "--root", str(planted), "--test", str(test), "--n-folds", "3"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "train-test overlap: 1 set(s) join training and test images" in out
    assert "train:c2/g15/1.png" in out and "test:t0.jpg" in out and "test:t1.png" not in out


def test_digits_demo_split_still_has_every_class_in_every_fold(digits_root, tmp_path):
    config = load_config(REPO / "configs" / "digits" / "resnet18.yaml")
    train = load_dataset(config.data, digits_root.parent).train
    d, s = config.data, config.data.split
    split = ensure_split(train, s.name, s.n_folds, s.seed, tmp_path / "splits", d.duplicates,
                         d.near_duplicate_distance, tmp_path / "cache")
    assert split.duplicates == "near<=4" and split.merged_groups > 0
    per_fold = pd.crosstab(split.table["label"], split.table["fold"])
    assert per_fold.shape == (10, 5) and per_fold.to_numpy().min() >= 20


def test_registry_checks_the_duplicate_fields_and_loads_entries_without_them(tmp_path):
    base = {"name": "m", "arch": "resnet18", "classes": ["a", "b"], "weights": "m.safetensors", "sha256": "0" * 64,
            "input": {"size": [8, 8], "mean": [0.5] * 3, "std": [0.25] * 3},
            "split": {"name": "s", "sha256": "a" * 64, "fold": 0, "n_folds": 5},
            "metrics": {"val_f1_macro": 0.5}, "config": "m.yaml", "created": "2026-12-02T00:00:00Z"}
    path = tmp_path / "registry.yaml"
    old = dict(base, name="old")
    new = dict(base, name="new", split=dict(base["split"], duplicates="near<=8", merged_groups=3))
    # old and new share their sub-dicts: written without aliases, as the project's own writers write YAML.
    path.write_text(files.dump_yaml({"version": 1, "members": [old, new]}))
    assert [e.name for e in Registry(path).members()] == ["old", "new"]
    for field, value, message in (("duplicates", "fuzzy", "must be off, exact or near<=N"),
                                  ("merged_groups", -1, "must be a whole number >= 0")):
        bad = dict(base, split=dict(base["split"], **{field: value}))
        path.write_text(yaml.safe_dump({"version": 1, "members": [bad]}))
        with pytest.raises(UserError, match=f"member #1 \\('m'\\) field 'split': '{field}' {message}"):
            Registry(path).members()


def test_report_header_names_the_shared_split_and_setting():
    shared = {"name": "holdout", "sha256": "ab" * 32, "fold": 0, "duplicates": "near<=8", "merged_groups": 4}
    line = split_line({"a": shared, "b": dict(shared)})
    assert line == "Validation: split `holdout` (abababababab), duplicates near<=8, 4 group(s) merged, shared by every member"
    mixed = split_line({"a": shared, "b": {"name": "holdout", "sha256": "cd" * 32, "fold": 0}})
    assert mixed.startswith("Validation differs between members:") and "duplicates off (not recorded) for b" in mixed
    assert split_line({}) is None


def test_config_refuses_unknown_settings_and_distances(tmp_path):
    # YAML reads a bare `off` as false, on the command line and in a file alike: both mean the setting off.
    assert load_config(None, ["data.duplicates=off"]).data.duplicates == "off"
    (tmp_path / "m.yaml").write_text("data:\n  duplicates: off\n")
    assert load_config(tmp_path / "m.yaml").data.duplicates == "off"
    with pytest.raises(UserError, match="data.duplicates' in the command-line overrides is 'fuzzy'; choose one of"):
        load_config(None, ["data.duplicates=fuzzy"])
    with pytest.raises(UserError, match="near_duplicate_distance' in defaults must lie in 0..16"):
        load_config(None, ["data.near_duplicate_distance=40"])


def test_training_records_the_setting_and_the_merged_groups(tmp_path, isolated_env, monkeypatch, caplog):
    import logging

    from core.settings import load_settings
    from jobs.train import TrainRequest, train_command
    from tests.training_fixture import member_config, one_thread, write_shapes

    one_thread(monkeypatch)
    caplog.set_level(logging.INFO, logger="members")  # what the train script's console logging sets
    data = write_shapes(tmp_path / "shapes")
    # Two exact copies across classes (each file is its own group in a flat folder): two groups merge.
    (data / "bar" / "15.png").write_bytes((data / "circle" / "03.png").read_bytes())
    (data / "cross" / "15.png").write_bytes((data / "circle" / "03.png").read_bytes())
    cfg = member_config(tmp_path / "member.yaml", data, name="dedup", epochs=1)
    outcome = train_command(TrainRequest(str(cfg), ["data.duplicates=exact"]), load_settings())
    assert outcome.code == 0, outcome.message
    entry = Registry(isolated_env / "registry.yaml").get("dedup")
    assert entry.split.duplicates == "exact" and entry.split.merged_groups == 2
    log = (Registry(isolated_env / "registry.yaml").resolve(entry.run) / "train.log").read_text()
    assert "split shapes-s0 duplicates exact: 2 group(s) merged with their copies" in log
    split = read_split(isolated_env / "splits" / "shapes-s0.csv").table.set_index("id")
    assert split.loc[["circle/03.png", "bar/15.png", "cross/15.png"], "fold"].nunique() == 1


def test_the_pre_scan_takes_the_hashes_in_the_same_visit(planted, tmp_path):
    from imagedata.prescan import apply_policy, scan

    _, train = folder_data(planted)
    (planted / "c0/g05/1.png").write_bytes((planted / "c0/g05/1.png").read_bytes()[:300])   # truncated
    plain = scan(train["path"].tolist())
    kept, skipped = apply_policy(train, "skip", tmp_path / "cache", with_hashes=True)
    assert skipped["id"].tolist() == ["c0/g05/1.png"]
    both = scan(train["path"].tolist(), with_phash=True)
    assert both.bad == plain.bad and both.sizes == plain.sizes       # the same verdict and sizes as the probe
    [cached] = (tmp_path / "cache" / "hashes").glob("*.json")        # written for the rows the split is made on
    stored = json.loads(cached.read_text())
    assert stored["n"] == len(kept) == len(train) - 1
    assert (stored["sha256"], stored["phash"]) == file_hashes(kept["path"].tolist(), None)


def test_batched_phash_is_imagehash_phash_bit_for_bit(planted):
    import imagehash

    from imagedata.duplicates import _thumbnail, phashes

    thumbs = [_thumbnail((planted / rel).read_bytes())[0] for rel in sorted(
        p.relative_to(planted).as_posix() for p in planted.rglob("*.*"))]
    ours = phashes(np.stack(thumbs))
    theirs = [str(imagehash.phash(Image.fromarray(t))) for t in thumbs]
    assert ours == theirs and len(set(ours)) > 30
