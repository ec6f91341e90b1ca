"""Hostile inputs, round three: configs, names and text that ended in a traceback (issue 28).

Every number the config accepts is one torch and the data loader accept (checked at load, before the
data scan); one name rule for a config's name, a registry entry and `predict import --member`; text from
data is drawn literally; bad bytes in user files are one line; an empty WANDB_MODE and wandb's $HOME
folders are handled before wandb starts.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from core.config import load_config
from core.errors import UserError
from core.plots import plot_confusion
from core.wandb_mode import keep_inside
from registry_fixtures import entry, write_registry
from test_bad_inputs import trained  # noqa: F401  (a fixture)
from test_names_sizes_and_torn_outputs import fails, project  # noqa: F401  (project: a fixture)


@pytest.mark.parametrize("override, key", [
    ("train.lr=-1", "train.lr"), ("train.lr=.nan", "train.lr"), ("train.lr=.inf", "train.lr"),
    ("train.seed=-1", "train.seed"), (f"train.seed={2 ** 40}", "train.seed"),
    ("train.num_workers=-1", "train.num_workers"), ("train.weight_decay=-1", "train.weight_decay"),
    ("early_stopping.patience=-1", "early_stopping.patience"), ("data.split.seed=-5", "data.split.seed"),
    ("model.drop_rate=1.5", "model.drop_rate"), ("early_stopping.min_delta=.nan", "early_stopping.min_delta"),
    ("train.momentum=2", "train.momentum"), ("tracking.wandb.log_every=0", "tracking.wandb.log_every"),
])
def test_every_number_is_bounded_by_the_schema(override, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_sensible_numbers_still_load():
    config = load_config(None, ["train.lr=0.01", "train.seed=7", "early_stopping.patience=0", "train.num_workers=2"])
    assert (config.train.lr, config.train.seed, config.early_stopping.patience) == (0.01, 7, 0)


@pytest.mark.parametrize("name", ["with\ttab", "my model", "a/b", ".hidden"])
def test_a_config_name_is_checked_by_the_one_name_rule_at_load(name):
    with pytest.raises(UserError, match="'name'"):
        load_config(None, [f"name={name}"])


def test_the_registry_applies_the_same_name_rule(tmp_path):
    from core.registry import Registry

    path = write_registry(tmp_path / "registry.yaml", [entry("with\ttab")])
    with pytest.raises(UserError, match="field .name."):
        Registry(path).members()


def test_an_imported_member_name_with_a_space_is_refused_before_it_is_stored(capsys, project):
    npz = project.root / "foreign.npz"
    with np.load(project.cached("val"), allow_pickle=False) as z:
        np.savez(npz, ids=z["ids"], probs=z["probs"], classes=z["classes"])
    fails(capsys, project, "predict", ["import", "--member", "my model", "--split", "val", "--npz", str(npz),
                                       "--like", "good"], "--member", "'my model'")
    assert not (project.out / "cache" / "predictions" / "my model").exists()


def test_invalid_utf8_in_the_registry_is_one_line(capsys, project):
    path = project.registry.path
    path.write_bytes(path.read_bytes() + b"\n# caf\xe9\n")
    fails(capsys, project, "vote", ["--members", "good"], str(path), "UTF-8")


def test_a_latin1_config_is_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(UserError, match="not UTF-8"):
        load_config(path)


def test_a_bom_in_a_config_is_not_part_of_the_first_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes("\ufeffname: bom\n".encode("utf-8"))
    assert load_config(path).name == "bom"


def test_class_names_with_dollars_are_drawn_literally(tmp_path):
    y = np.array([0, 1, 1, 0])
    out = plot_confusion(y, y, ["$x^$", "a$b"], tmp_path / "cm.png", "title $^$")
    assert out.is_file() and out.stat().st_size > 0


def test_an_empty_wandb_mode_is_unset_and_wandb_folders_stay_inside(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "")
    for var in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    keep_inside(tmp_path / "wandb")
    assert "WANDB_MODE" not in os.environ
    for var in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
        assert os.environ[var].startswith(str(tmp_path))
