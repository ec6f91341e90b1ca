"""The mask-competition layout end to end, through the real commands: train (skip policy), vote.

Tiny on purpose: 24x32 photos, 32x24 inputs, one epoch of small timm models.
"""
from __future__ import annotations

import pandas as pd
import pytest
import yaml

from core.config import load_config
from core.errors import UserError
from core.settings import load_settings
from tests.helpers import REPO, run_script, train_in_process
from tests.mask_fixture import plant_bad_files, write_mask_layout

pytestmark = pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")
CONFIG = str(REPO / "configs" / "mask" / "resnet18.yaml")
SPLIT = "mask-k3"


def train(root, name: str, arch: str, *extra: str):
    """scripts.train in this process (what it writes is checked, not the process), in the test's environment."""
    return train_in_process("--config", CONFIG, f"name={name}", f"model.arch={arch}", "model.pretrained=false",
                            f"data.root={root}", "data.image_size=[32, 24]", "train.epochs=1", "train.batch_size=16",
                            "train.num_workers=0", "train.augment.color_jitter=0", "data.on_bad_image=skip",
                            f"data.split.name={SPLIT}", "data.split.n_folds=3", *extra, env={})


def test_mask_layout_trains_and_votes_a_valid_submission(tmp_path, isolated_env):
    fixture = write_mask_layout(tmp_path / "mask")
    bad = plant_bad_files(fixture.root, fixture)

    # Default policy: refuse before any work, naming every bad file on one line; no split is made.
    from jobs.train import prepare_data

    with pytest.raises(UserError) as err:
        prepare_data(load_config(CONFIG, [f"data.root={fixture.root}", f"data.split.name={SPLIT}"]), load_settings())
    assert "\n" not in str(err.value) and all(str(path) in str(err.value) for path in bad.values())
    assert not (isolated_env / "splits" / f"{SPLIT}.csv").exists()

    train(fixture.root, "mask-r10t", "resnet10t")
    train(fixture.root, "mask-regnet", "regnetx_002")

    registry = yaml.safe_load((isolated_env / "registry.yaml").read_text())["members"]
    assert [e["name"] for e in registry] == ["mask-r10t", "mask-regnet"]
    for entry in registry:
        assert entry["composite"] == {"tasks": [{"name": "mask", "size": 3}, {"name": "gender", "size": 2},
                                                {"name": "age", "size": 3}]}
        skipped = pd.read_csv(isolated_env / entry["run"] / "skipped_images.csv")
        assert sorted(skipped["path"]) == sorted(str(p) for p in bad.values())
    split = pd.read_csv(isolated_env / "splits" / f"{SPLIT}.csv")
    assert not set(split["id"]) & set(skipped["id"])          # skipped before the split was made
    assert (split.groupby("group")["fold"].nunique() == 1).all()

    out = isolated_env / "submissions" / "mask-vote.csv"
    run_script("vote", "--members", "mask-r10t", "mask-regnet", "--name", "mask-vote")
    submission = pd.read_csv(out, dtype={"ImageID": str})
    info = pd.read_csv(fixture.info_csv, dtype={"ImageID": str})
    assert list(submission.columns) == ["ImageID", "ans"]
    assert submission["ImageID"].tolist() == info["ImageID"].tolist() == fixture.eval_ids
    assert pd.api.types.is_integer_dtype(submission["ans"]) and submission["ans"].between(0, 17).all()

    # A test image that no longer decodes stops prediction, naming it: a submission needs every row.
    from core.registry import Registry
    from predict.run import predict_members

    broken = fixture.root / "eval" / "images" / fixture.eval_ids[2]
    broken.write_bytes(broken.read_bytes()[:40])
    with pytest.raises(UserError, match="every row") as err:
        predict_members(["mask-r10t"], Registry(isolated_env / "registry.yaml"), load_settings(), parts=("test",))
    assert str(broken) in str(err.value)
