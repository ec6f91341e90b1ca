"""Extension points: a data source, loss, optimizer, schedule or model family is named in one place,
beside its implementation, and everything else (config check, --help, error messages) reads it."""
from __future__ import annotations

import ast
import contextlib
import importlib
import io
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from core.cli import extension_help
from core.config import load_config
from core.errors import UserError
from core.extensions import DATA_SOURCES, POINTS, declared_names
from imagedata.sources import Dataset, load_dataset
from test_architecture import ALLOWED

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def flat_source(tmp_path):
    """A throw-away source, added through the registry only: one folder of `<label>_<n>.png` files."""
    def flat(root: Path, test: Path | None) -> Dataset:
        files = sorted(root.glob("*.png"))
        classes = sorted({f.name.split("_")[0] for f in files})
        train = pd.DataFrame({"id": [f.name for f in files], "path": [str(f) for f in files],
                              "label": [classes.index(f.name.split("_")[0]) for f in files],
                              "group": [f.stem for f in files]})
        return Dataset("flat", root, classes, train)

    DATA_SOURCES.register("flat", "one folder, the label before the first underscore")(flat)
    root = tmp_path / "flat"
    root.mkdir()
    for label in ("cat", "dog"):
        for n in range(2):
            Image.new("RGB", (8, 8), (40 * n, 0, 0)).save(root / f"{label}_{n}.png")
    yield root
    DATA_SOURCES.unregister("flat")


def _help_of(module: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        importlib.import_module(module).parse(["--help"])
    return out.getvalue()


def test_a_source_registered_beside_its_code_is_accepted_listed_and_loaded(flat_source, tmp_path):
    config = load_config(None, ["data.source=flat", f"data.root={flat_source}"])
    dataset = load_dataset(config.data, tmp_path)
    assert dataset.classes == ["cat", "dog"] and dataset.train["label"].tolist() == [0, 0, 1, 1]
    with pytest.raises(UserError) as refused:
        load_config(None, ["data.source=flatt"])
    assert "config key 'data.source' in the command-line overrides is 'flatt'; choose one of" in str(refused.value)
    assert "flat" in str(refused.value).split("choose one of")[1] and "\n" not in str(refused.value)
    assert "data.source: digits, folder, csv, mask, flat" in extension_help()
    assert "flat" in _help_of("scripts.check_data") and "flat" in _help_of("scripts.train")


def test_once_unregistered_the_source_is_refused_again(flat_source):
    DATA_SOURCES.unregister("flat")
    with pytest.raises(UserError, match="'data.source' .* is 'flat'; choose one of csv, digits, folder, mask$"):
        load_config(None, ["data.source=flat"])


def test_each_point_is_filled_by_its_named_provider_in_a_package_core_may_serve():
    """core loads a provider by name (it may not import upward); the provider must exist, sit in a
    stage package and register the built-in names, so the lookup cannot silently find nothing."""
    assert set(POINTS) == {"data.source", "train.loss", "train.optimizer", "train.scheduler"}
    for key, point in POINTS.items():
        package = point.provider.split(".")[0]
        assert package in ALLOWED and "core" in ALLOWED[package], key
        source = (ROOT / Path(*point.provider.split("."))).with_suffix(".py").read_text(encoding="utf-8")
        registered = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
                      and isinstance(node.func, ast.Attribute) and node.func.attr == "register"]
        assert registered and point.names(), key


def test_help_reads_each_points_names_as_its_provider_registers_them():
    """--help lists the names from the provider's source (importing members.losses would load torch);
    that reading must agree with the registration it stands for."""
    for key, point in POINTS.items():
        assert declared_names(point) == point.names(), key


def test_a_config_name_check_and_the_implementation_agree():
    assert POINTS["train.loss"].names() == ["ce", "focal", "soft_f1"]
    assert POINTS["train.scheduler"].names() == ["cosine", "step", "constant"]
    with pytest.raises(UserError, match="'train.optimizer' .* is 'adam'; choose one of adamw, sgd"):
        load_config(None, ["train.optimizer=adam"])


def test_the_torchvision_prefix_is_spelled_in_one_module():
    """`torchvision:` names a model family; only modeling/families.py may spell it."""
    spelled = []
    for package in ("core", "imagedata", "modeling", "members", "predict", "ensemble", "report", "jobs"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            if any(isinstance(n, ast.Constant) and n.value == "torchvision:" for n in ast.walk(tree)):
                spelled.append(path.relative_to(ROOT).as_posix())
    assert spelled == ["modeling/families.py"]


def test_an_unknown_arch_is_refused_by_its_family_with_close_names():
    from modeling.families import TORCHVISION, check_arch, family_of

    assert family_of("torchvision:resnet18") == (TORCHVISION, "resnet18")
    with pytest.raises(UserError, match=r"unknown architecture 'torchvision:resnet1'.*torchvision:resnet18"):
        check_arch("torchvision:resnet1")
    with pytest.raises(UserError, match="unknown architecture 'resnet1800'"):
        check_arch("resnet1800")
