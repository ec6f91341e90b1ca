"""The checkpoint policy (members/checkpoints.py) on a real model and optimizer, without training a member."""
from __future__ import annotations

import json

import numpy as np
import torch
from timm.utils import ModelEmaV3
from torch import nn

from core.config import load_config
from members.checkpoints import Checkpoints
from members.early_stopping import EarlyStopping
from members.resume import load_state
from members.run_state import EpochOutputs, RunState, TrainResult


def fresh_run(ema: bool = True) -> RunState:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return RunState(model, ModelEmaV3(model, decay=0.9) if ema else None, torch.amp.GradScaler("cpu", enabled=False),
                    optimizer, scheduler, EarlyStopping("max", 3, 0.0), EarlyStopping("max", 3, 0.0), TrainResult())


def step(run: RunState) -> None:
    run.optimizer.zero_grad()
    run.model(torch.randn(8, 4)).sum().backward()
    run.optimizer.step()
    run.global_step += 1


def outputs(seed: int) -> EpochOutputs:
    logits = np.random.default_rng(seed).normal(size=(5, 3)).astype(np.float32)
    return EpochOutputs(logits, torch.softmax(torch.from_numpy(logits), 1).numpy(), 0.5)


def test_best_is_written_only_when_the_epoch_improved_and_last_always(tmp_path):
    config = load_config(None, ["train.ema=0.9"])
    policy, run = Checkpoints.of(config, tmp_path, wandb_run="abc"), fresh_run()
    step(run)
    policy.epoch_end(run, 1, {"val_f1_macro": 0.5}, outputs(1), improved=True, ema_improved=False)
    assert json.loads((tmp_path / "best.safetensors.json").read_text())["epoch"] == 1
    assert not (tmp_path / "best_ema.safetensors").exists()
    step(run)
    policy.epoch_end(run, 2, {"val_f1_macro": 0.4}, outputs(2), improved=False, ema_improved=True)
    assert json.loads((tmp_path / "best.safetensors.json").read_text())["epoch"] == 1  # not replaced
    assert json.loads((tmp_path / "best_ema.safetensors.json").read_text())["ema_decay"] == 0.9
    assert (run.result.best_epoch, run.result.ema_best_epoch) == (1, 2)
    state = load_state(tmp_path)
    assert (state.epochs_done, state.global_step, state.wandb_run) == (2, 2, "abc")
    assert set(state.weights) == {"last.safetensors", "last_ema.safetensors"}


def test_a_restored_run_is_the_saved_one(tmp_path):
    config = load_config(None, ["train.ema=0.9"])
    policy, saved = Checkpoints.of(config, tmp_path), fresh_run()
    step(saved)
    saved.stopper.step(0.5, 1)
    policy.epoch_end(saved, 1, {"val_f1_macro": 0.5}, outputs(1), improved=True, ema_improved=True)
    step(saved)
    policy.save_last(saved, epochs_done=1, step_in_epoch=1, partial=(3.0, 8.0))
    restored = fresh_run()
    policy.restore(restored, load_state(tmp_path))
    for a, b in zip(saved.model.state_dict().values(), restored.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(saved.ema.module.state_dict().values(), restored.ema.module.state_dict().values()):
        assert torch.equal(a, b)
    momentum = [s["momentum_buffer"] for s in restored.optimizer.state_dict()["state"].values()]
    assert all(torch.equal(a["momentum_buffer"], b) for a, b in zip(saved.optimizer.state_dict()["state"].values(),
                                                                     momentum))
    assert restored.global_step == 2 and restored.stopper.state() == saved.stopper.state()
    assert restored.result.best_epoch == 1
    np.testing.assert_array_equal(restored.result.best_outputs.logits, saved.result.best_outputs.logits)


def test_without_a_run_folder_nothing_is_written_but_the_best_is_recorded(tmp_path, monkeypatch):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    run = fresh_run(ema=False)
    Checkpoints.of(load_config(None, [])).epoch_end(run, 1, {"val_f1_macro": 0.5}, outputs(1), improved=True,
                                                     ema_improved=False)
    assert run.result.best_epoch == 1 and list((tmp_path / "cwd").iterdir()) == []
