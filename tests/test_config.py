"""Config validation: unknown keys and bad values are refused with the key named."""
from __future__ import annotations

import pytest

from core.config import load_config, parse_overrides
from core.errors import UserError


def write(tmp_path, text):
    path = tmp_path / "member.yaml"
    path.write_text(text)
    return path


def test_yaml_and_overrides_merge(tmp_path):
    path = write(tmp_path, "name: a\ntrain: {epochs: 3, lr: 0.01}\nmodel: {arch: resnet18}\n")
    cfg = load_config(path, ["train.epochs=5", "model.arch=regnetx_002", "data.image_size=[16, 24]"])
    assert cfg.train.epochs == 5
    assert cfg.train.lr == 0.01  # untouched by the override
    assert cfg.model.arch == "regnetx_002"
    assert cfg.data.image_size == [16, 24]


@pytest.mark.parametrize("text, key", [
    ("trian: {epochs: 3}\n", "trian"),
    ("train: {epoch: 3}\n", "train.epoch"),
    ("data: {split: {nme: x}}\n", "data.split.nme"),
])
def test_unknown_key_in_file_is_named(tmp_path, text, key):
    with pytest.raises(UserError, match=f"unknown config key '{key}'"):
        load_config(write(tmp_path, text))


def test_unknown_key_suggests_the_close_one(tmp_path):
    with pytest.raises(UserError, match="did you mean 'epochs'"):
        load_config(write(tmp_path, "train: {epoch: 3}\n"))


def test_unknown_override_key_is_named():
    with pytest.raises(UserError, match="unknown config key 'train.epohcs' in the command-line overrides"):
        load_config(None, ["train.epohcs=3"])


@pytest.mark.parametrize("override, fragment", [
    ("train.epochs=three", "train.epochs"),
    ("train.optimizer=adam", "train.optimizer"),
    ("early_stopping.mode=up", "early_stopping.mode"),
    ("data.image_size=[32]", "data.image_size"),
    ("train.epochs=0", "train.epochs"),
    ("name=has space", "name"),
    ("data.split.fold=5", "n_folds/fold"),
])
def test_bad_values_are_refused(override, fragment):
    with pytest.raises(UserError, match=fragment.replace(".", r"\.")):
        load_config(None, [override])


def test_override_needs_equals():
    with pytest.raises(UserError, match="key=value"):
        parse_overrides(["train.epochs"])


def test_override_values_are_typed():
    tree = parse_overrides(["a.b=3", "a.c=0.5", "d=true", "e=null", "f=text"])
    assert tree == {"a": {"b": 3, "c": 0.5}, "d": True, "e": None, "f": "text"}


def test_missing_file_is_named(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("override", [
    "data.image_size=&x [*x, *x]",                           # a self-reference
    "a=[&x [1, 1], &y [*x, *x, *x, *x], [*y, *y, *y, *y]]",  # the start of a "billion laughs"
])
def test_override_aliases_are_refused_not_expanded(override):
    """Override values go through the project's one YAML reader: aliases are refused, as in a config file."""
    key = override.split("=", 1)[0]
    with pytest.raises(UserError, match=rf"override '{key}=…': YAML aliases \(\*name\) are not allowed"):
        parse_overrides([override])
    with pytest.raises(UserError, match="aliases"):
        load_config(None, [override])


def test_override_anchor_without_alias_and_unparsable_text_still_read():
    """Only aliases are refused: an anchor alone is a plain value, and text YAML cannot parse stays text."""
    tree = parse_overrides(["a=&x 3", "b=x: y: z", "c="])
    assert tree == {"a": 3, "b": "x: y: z", "c": None}
