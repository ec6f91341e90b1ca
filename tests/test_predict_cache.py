"""The prediction cache: keyed by weights, data and TTA; reused on a re-run; foreign predictions imported and voted."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import UserError
from core.registry import Registry
from helpers import run_script
from imagedata.splits import read_split
from predict import cache
from predict.imports import import_predictions
from predict.run import predict_members
from predict_fixture import MEMBERS, members_template, project_copy

NAMES = [name for name, *_ in MEMBERS]


@pytest.fixture
def project(tmp_path, tmp_path_factory, digits_root, monkeypatch):
    settings, env = project_copy(members_template(tmp_path_factory.getbasetemp(), digits_root), tmp_path / "proj",
                                 digits_root)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return settings, env, Registry(settings.registry)


def stamp(settings, name, split):
    return cache.cache_path(settings.predictions, name, split).stat().st_mtime_ns


def test_rerun_reuses_the_cache_tta_is_part_of_the_key_and_force_recomputes(project, digits_root):
    settings, _, registry = project
    first = predict_members(NAMES, registry, settings)
    stamps = {(n, s): stamp(settings, n, s) for n in NAMES for s in ("val", "test")}

    again = predict_members(NAMES, registry, settings)
    assert {(n, s): stamp(settings, n, s) for n in NAMES for s in ("val", "test")} == stamps
    assert again["m-resnet"]["val"].key == first["m-resnet"]["val"].key

    flipped = predict_members(["m-resnet"], registry, settings, parts=("val",), tta="flip")["m-resnet"]["val"]
    assert flipped.key != first["m-resnet"]["val"].key and flipped.tta == "flip"
    assert cache.load(cache.cache_path(settings.predictions, "m-resnet", "val")).tta == "flip"
    assert np.abs(flipped.probs - first["m-resnet"]["val"].probs).max() > 1e-3
    assert stamp(settings, "m-tiny", "val") == stamps[("m-tiny", "val")]   # untouched by a run that did not name it

    forced = predict_members(["m-tiny"], registry, settings, parts=("val",), force=True)["m-tiny"]["val"]
    assert stamp(settings, "m-tiny", "val") != stamps[("m-tiny", "val")]
    np.testing.assert_allclose(forced.probs, first["m-tiny"]["val"].probs, atol=1e-6)


def test_cache_file_holds_the_documented_fields_in_row_order(project, digits_root):
    settings, _, registry = project
    predict_members(["m-tiny"], registry, settings, tta="flip,shift")
    entry = registry.get("m-tiny")
    split = read_split(settings.splits / f"{entry.split.name}.csv")
    val_rows = split.rows(entry.split.fold, "val")
    info = pd.read_csv(digits_root / "test" / "info.csv", dtype={"ImageID": str})
    for name, ids, labels in [("val", val_rows["id"].tolist(), val_rows["label"].to_numpy()),
                              ("test", info["ImageID"].tolist(), np.full(len(info), -1))]:
        with np.load(cache.cache_path(settings.predictions, "m-tiny", name), allow_pickle=False) as z:
            assert set(z.files) >= {"ids", "probs", "logits", "labels", "classes", "key", "tta"}
            assert z["ids"].tolist() == ids
            assert z["probs"].dtype == np.float32 and z["probs"].shape == (len(ids), 10)
            np.testing.assert_allclose(z["probs"].sum(1), 1, atol=1e-5)
            np.testing.assert_allclose(np.exp(z["logits"]), z["probs"], atol=1e-5)
            assert z["labels"].tolist() == labels.tolist()
            assert z["classes"].tolist() == entry.classes
            assert str(z["tta"]) == "flip,shift" and len(str(z["key"])) == 64


def foreign_file(path, ids, probs, classes, **extra):
    np.savez(path, ids=np.asarray(ids, dtype=str), probs=probs, classes=np.asarray(classes, dtype=str), **extra)
    return path


def test_foreign_predictions_are_checked_stored_and_voted(project, tmp_path, digits_root):
    settings, env, registry = project
    mine = predict_members(["m-resnet"], registry, settings)["m-resnet"]
    rng = np.random.default_rng(0)
    files = {}
    for split, pred in mine.items():
        # made "elsewhere": other probabilities, rows in another order, no logits
        order = rng.permutation(len(pred.ids))
        probs = rng.dirichlet(np.ones(10), len(pred.ids))
        files[split] = (probs, foreign_file(tmp_path / f"ext_{split}.npz", pred.ids[order], probs[order],
                                            pred.classes, labels=pred.labels[order], tta="flip"))
        if split == "val":   # once through the command line a user types, once through the function
            proc = run_script("predict", "import", "--member", "ext", "--split", split, "--npz",
                              str(files[split][1]), "--like", "m-resnet", env=env)
            assert "checked against 'm-resnet'" in proc.stdout
        else:
            import_predictions(registry, settings, "ext", split, files[split][1], "m-resnet")
        stored = cache.load(cache.cache_path(settings.predictions, "ext", split))
        assert stored.ids.tolist() == pred.ids.tolist()                 # the reference's row order
        np.testing.assert_allclose(stored.probs, probs, atol=1e-6)
        assert stored.labels.tolist() == pred.labels.tolist()
        assert (stored.origin, stored.reference, stored.tta) == ("imported", "m-resnet", "flip")

    from scripts import vote

    assert vote.main(["--members", "m-resnet", "ext", "--rule", "soft", "--name", "mixed"]) == 0
    sub = pd.read_csv(settings.output_root / "submissions" / "mixed.csv", dtype={"ImageID": str})
    expected = (mine["test"].probs + files["test"][0]) / 2
    assert sub["ans"].tolist() == expected.argmax(1).tolist()


def test_foreign_predictions_that_do_not_fit_are_refused(project, tmp_path):
    settings, _, registry = project
    entry = registry.get("m-resnet")
    split = read_split(settings.splits / f"{entry.split.name}.csv")
    val = split.rows(0, "val")
    ids, labels, classes = val["id"].to_numpy(), val["label"].to_numpy(), entry.classes
    good = np.full((len(ids), 10), 0.1)

    def refused(match, path, member="ext", **kwargs):
        with pytest.raises(UserError, match=match):
            import_predictions(registry, settings, member, "val", path, "m-resnet", **kwargs)
        assert not cache.cache_path(settings.predictions, member, "val").exists()

    np.savez(tmp_path / "noprobs.npz", ids=ids.astype(str), classes=np.asarray(classes))
    refused("field 'probs' is missing", tmp_path / "noprobs.npz")
    refused(r"same names, other order", foreign_file(tmp_path / "order.npz", ids, good, classes[::-1]))
    refused(f"missing, e.g. '{ids[5]}'", foreign_file(tmp_path / "short.npz", np.delete(ids, 5),
                                                      np.delete(good, 5, 0), classes))
    refused("row 3 sums to", foreign_file(tmp_path / "logits.npz", ids, np.where(np.arange(len(ids))[:, None] == 3,
                                                                                2.0, good), classes))
    wrong = labels.copy()
    wrong[0] = (wrong[0] + 1) % 10
    refused(f"row '{ids[0]}' has label", foreign_file(tmp_path / "labels.npz", ids, good, classes, labels=wrong))
    refused("is a registered member", foreign_file(tmp_path / "ok.npz", ids, good, classes), member="m-tiny")

    import_predictions(registry, settings, "ext", "val", tmp_path / "ok.npz", "m-resnet")
    with pytest.raises(UserError, match="--overwrite"):
        import_predictions(registry, settings, "ext", "val", tmp_path / "ok.npz", "m-resnet")
