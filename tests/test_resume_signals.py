"""Robust runs: a paused or signalled run resumes to exactly the weights of an uninterrupted one."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from core.config import load_config
from core.errors import UserError
from core.registry import Registry
from core.settings import load_settings
from helpers import REPO
from jobs.train import train_member
from members.interrupts import TrainingStopped, stop_on_signals
from members.resume import load_state, resume_config
from scripts import train as train_script
from training_fixture import member_config, one_thread, write_shapes

# Two option sets, so both data paths and most training options pass through a save and a restore.
MODES = {
    "per_sample-ema": ["train.augment.mode=per_sample", "train.ema=0.9"],
    "batched-sampler-focal-step": ["train.augment.mode=batched", "train.class_balance=sampler", "train.loss=focal",
                                   "train.grad_clip=1.0", "train.scheduler=step", "train.step_size=1",
                                   "train.step_gamma=0.5", "train.warmup_epochs=1", "train.optimizer=sgd"],
}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_shapes(tmp_path_factory.mktemp("shapes") / "shapes")


@pytest.fixture(autouse=True)
def quiet_cpu(monkeypatch):
    """One thread (see one_thread); and train.deterministic flips a process-wide torch flag: restore both."""
    threads, deterministic = one_thread(monkeypatch), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def assert_same_tensors(a_file, b_file):
    a, b = load_file(str(a_file)), load_file(str(b_file))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{a_file.name}: {key} differs"


def comparable_history(run_dir) -> pd.DataFrame:
    return pd.read_csv(run_dir / "history.csv").drop(columns=["train_img_per_s"])


@pytest.mark.parametrize("mode", MODES)
def test_paused_then_resumed_run_equals_the_uninterrupted_run(mode, shapes, tmp_path):
    settings = load_settings()
    cfg = member_config(tmp_path / "member.yaml", shapes)
    straight_dir, straight = train_member(load_config(cfg, ["name=straight", *MODES[mode]]), settings)

    with pytest.raises(TrainingStopped) as stopped:
        train_member(load_config(cfg, ["name=paused", *MODES[mode]]), settings, stop_after_epoch=2)
    paused_dir = stopped.value.run_dir
    assert stopped.value.exit_code == 0 and paused_dir.name.endswith("_incomplete")
    assert not Registry(settings.registry).exists("paused")
    assert load_state(paused_dir).epochs_done == 2

    run_dir, config = resume_config(paused_dir, [])
    resumed_dir, entry = train_member(config, settings, resume_from=run_dir)

    names = ["last.safetensors", "best.safetensors"]
    if "ema" in mode:
        names += ["last_ema.safetensors", "best_ema.safetensors"]
        assert entry.ema.metrics == straight.ema.metrics
    for name in names:
        assert_same_tensors(straight_dir / name, resumed_dir / name)
    assert entry.metrics == straight.metrics
    pd.testing.assert_frame_equal(comparable_history(straight_dir), comparable_history(resumed_dir))
    assert [e.name for e in Registry(settings.registry).members()] == ["straight", "paused"]


def test_a_run_stopped_after_its_last_epoch_resumes_to_its_registration_without_training(shapes, tmp_path):
    # A SIGTERM during the final validation, or a killed plan driver, leaves every epoch done and nothing
    # registered: the plan launcher resumes such a run, and the resume must register it, not refuse it.
    settings = load_settings()
    cfg = member_config(tmp_path / "member.yaml", shapes, name="almost")
    with pytest.raises(TrainingStopped) as stopped:
        train_member(load_config(cfg), settings, stop_after_epoch=2)
    paused_dir = stopped.value.run_dir
    best_before = load_file(str(paused_dir / "best.safetensors"))
    state = load_state(paused_dir)

    run_dir, config = resume_config(paused_dir, ["train.epochs=2"])  # as if epoch 2 had been the last
    finished_dir, entry = train_member(config, settings, resume_from=run_dir)
    assert entry.name == "almost" and not finished_dir.name.endswith("_incomplete")
    assert len(pd.read_csv(finished_dir / "history.csv")) == 2  # no third epoch was trained
    assert entry.metrics["val_f1_macro"] == pytest.approx(state.best["val_f1_macro"], abs=1e-6)
    after = load_file(str(finished_dir / "best.safetensors"))
    assert all(torch.equal(best_before[k], after[k]) for k in best_before)


def test_sigterm_mid_training_saves_last_registers_nothing_and_resumes_exactly(shapes, tmp_path, isolated_env,
                                                                               capsys):
    cfg = member_config(tmp_path / "member.yaml", shapes, name="signalled", epochs=6)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "scripts.train", "--config", str(cfg)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(isolated_env.glob("runs/*/*/last_state.json")):  # epoch 1 finished: training is under way
        assert proc.poll() is None, f"training ended before it could be signalled:\n{proc.communicate()[1]}"
        assert time.monotonic() < deadline, "training did not finish an epoch in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)

    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("received SIGTERM") and "--resume" in last_line
    assert not (isolated_env / "registry.yaml").exists()
    (run_dir,) = isolated_env.glob("runs/*/*_incomplete")
    assert (run_dir / "last.safetensors").is_file()
    assert load_state(run_dir).epochs_done < 6

    assert train_script.main(["--resume", str(run_dir)]) == 0  # in-process: one interpreter start is enough
    assert "registered signalled" in capsys.readouterr().out
    entries = Registry(isolated_env / "registry.yaml").members()
    assert [e.name for e in entries] == ["signalled"]

    # The uninterrupted run, in this process: wherever the signal landed, the weights must be identical.
    straight_dir, _ = train_member(load_config(cfg, ["name=straight"]), load_settings())
    finished = isolated_env / entries[0].run
    assert_same_tensors(straight_dir / "last.safetensors", finished / "last.safetensors")


def test_first_signal_raises_a_flag_second_ctrl_c_interrupts():
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as stop:
        signal.raise_signal(signal.SIGTERM)
        assert stop and stop.name == "SIGTERM"
        assert stop.stopped(None).exit_code == 143
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before
    with stop_on_signals() as stop:
        signal.raise_signal(signal.SIGINT)  # a first Ctrl-C only asks
        assert stop.name == "SIGINT" and stop.stopped(None).exit_code == 130


def test_resume_refuses_finished_runs_frozen_keys_and_missing_state(tmp_path, capsys):
    finished = tmp_path / "120000_m_resnet18_f1-0.9000"
    incomplete = tmp_path / "120000_m_resnet18_incomplete"
    for folder in (finished, incomplete):
        folder.mkdir()
        (folder / "config.yaml").write_text("name: m\n")
    with pytest.raises(UserError, match="already finished"):
        resume_config(finished, [])
    with pytest.raises(UserError, match="'model.arch' cannot change"):
        resume_config(incomplete, ["model.arch=resnet50"])
    _, config = resume_config(incomplete, ["train.epochs=20"])
    assert config.train.epochs == 20
    with pytest.raises(UserError, match="no resumable state"):
        load_state(incomplete)
    assert train_script.main(["--resume", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("error: --resume")
