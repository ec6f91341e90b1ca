"""`scripts.train --predict`: train, register, then fill the member's val and test predictions in the same
process (what a plan's member task runs), holding exactly what a separate `scripts.predict` writes."""
from __future__ import annotations

import numpy as np
import pytest

from core.registry import Registry
from core.settings import load_settings
from helpers import REPO, train_in_process
from predict import cache
from predict.run import predict_members

CFG = str(REPO / "configs" / "digits" / "resnet18.yaml")
TINY = ["data.image_size=[16,16]", "train.epochs=1", "train.batch_size=128", "model.arch=test_resnet"]


def test_train_with_predict_caches_what_a_separate_predict_writes(tmp_path, digits_root):
    out = tmp_path / "out"
    env = {"VOTE_OUTPUT_ROOT": str(out), "VOTE_DATA_ROOT": str(digits_root.parent), "TQDM_DISABLE": "1",
           "WANDB_MODE": "disabled", "VOTE_LOCAL_CONFIG": str(tmp_path / "none.yaml")}
    stdout = train_in_process("--config", CFG, "name=tp", *TINY, "--predict", env=env)
    lines = stdout.splitlines()
    assert lines[0].startswith("registered tp:") and any("tp" in line for line in lines[1:])

    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = load_settings()
        stored = {part: cache.load(cache.cache_path(settings.predictions, "tp", part)) for part in cache.PARTS}
        fresh = predict_members(["tp"], Registry(settings.registry), settings, force=True)["tp"]
    for part in cache.PARTS:
        assert len(stored[part].probs) > 0
        np.testing.assert_array_equal(stored[part].probs, fresh[part].probs)


@pytest.mark.parametrize("extra, world, named", [(["--smoke"], "1", "--smoke"), ([], "2", "torchrun")])
def test_predict_where_it_cannot_run_is_refused_in_one_line(capsys, monkeypatch, extra, world, named):
    from scripts.train import main

    monkeypatch.setenv("WORLD_SIZE", world)  # as torchrun sets it for each of its processes
    assert main(["--config", CFG, *extra, "--predict", *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--predict" in err and named in err
    assert not (load_settings().output_root / "runs").exists()  # refused before any work
