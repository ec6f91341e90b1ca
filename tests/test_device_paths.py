"""The GPU code path, run on a CPU: the resident pool, batched augmentation, explicit bf16/fp16 autocast,
channels_last, the out-of-memory retry and torch.compile, each through the same lines a GPU runs."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from safetensors.torch import load_file
from torch import nn

from core.config import load_config
from core.distributed import DistContext
from core.errors import UserError
from core.registry import Registry
from core.settings import load_settings
from jobs.train import train_member
from members.checkpoints import Checkpoints
from members.feeding import EpochOrder, Pool, build_feeds, choose_placement
from members.interrupts import TrainingStopped
from members.resume import resume_config
from members.trainer import Network, RunContext, Trainer
from modeling.preprocess import Normalize, autocast_dtype, use_channels_last
from training_fixture import member_config, one_thread, write_shapes

CPU = torch.device("cpu")
# What a GPU member runs by default, asked for explicitly so a CPU runs it too.
GPU_STYLE = ["train.feed=resident", "train.augment.mode=batched", "train.amp=bf16", "train.channels_last=true"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_shapes(tmp_path_factory.mktemp("shapes") / "shapes")


@pytest.fixture(autouse=True)
def quiet_cpu(monkeypatch):
    threads, deterministic = one_thread(monkeypatch), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def pool_arrays(n=20, h=6, w=5, classes=3):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8), np.arange(n) % classes


# --- the resident pool on a CPU device --------------------------------------------------------------

def test_resident_is_honoured_on_a_cpu_and_stream_stays_cuda_only():
    assert choose_placement("resident", CPU, 10) == "resident"
    assert choose_placement("auto", CPU, 10) == "host"     # auto: today's choice on a CPU
    assert choose_placement("stream", CPU, 10) == "host"   # the side-stream prefetch needs CUDA


def test_resident_pool_is_one_device_tensor_that_yields_the_planned_rows_in_epoch_order():
    images, labels = pool_arrays()
    resident, _host = Pool(images, labels, CPU, "resident"), Pool(images, labels, CPU, "host")
    assert isinstance(resident.resident, torch.Tensor) and resident.resident.shape == images.shape
    images[:] = 0  # a copy: the resident pool no longer reads the memmap
    original, _ = pool_arrays()
    order = EpochOrder(np.arange(20), labels, batch_size=6, seed=3)
    for epoch in (1, 2):
        plan = order.batches(epoch)
        got = list(resident.iterate(plan))
        assert len(got) == len(plan) == 3  # drop-last batches, as every rank sees the same number
        for rows, (batch, batch_labels) in zip(plan, got):
            assert batch.shape == (6, 3, 6, 5) and batch.dtype == torch.uint8
            assert torch.equal(batch, torch.from_numpy(original[rows]).permute(0, 3, 1, 2))
            assert torch.equal(batch_labels, torch.from_numpy(labels[rows]))
            # The NCHW batch is a view of NHWC rows: channels_last strides, as the GPU path wants.
            assert batch.is_contiguous(memory_format=torch.channels_last)
    assert [r.tolist() for r in order.batches(1)] != [r.tolist() for r in order.batches(2)]
    again = [b for b, _ in Pool(original, labels, CPU, "resident").iterate(order.batches(2)[1:])]
    assert all(torch.equal(a, b) for a, (b, _) in zip(again, list(resident.iterate(order.batches(2)))[1:]))


def test_build_feeds_uses_the_resident_pool_for_batched_training_on_a_cpu():
    images, labels = pool_arrays(n=24)
    config = load_config(None, GPU_STYLE + ["train.batch_size=8"])
    feeds = build_feeds(config, images, labels, np.arange(16), np.arange(16, 24), DistContext(CPU))
    assert (feeds.placement, feeds.mode) == ("resident", "batched") and feeds.augment is not None
    batch, batch_labels = next(feeds.train.epoch(1))
    assert batch.device == CPU and batch.shape == (8, 3, 6, 5) and len(batch_labels) == 8
    augmented = feeds.augment(batch)  # BatchAugment on a channels_last CPU batch
    assert augmented.shape == batch.shape and augmented.dtype == torch.float32


# --- autocast and channels_last by explicit override ---------------------------------------------------

def test_auto_keeps_todays_choices_on_a_cpu():
    config = load_config(None, [])
    assert (config.train.amp, config.train.channels_last) == ("auto", "auto")
    assert autocast_dtype(CPU) is None and autocast_dtype(CPU, "auto") is None
    assert use_channels_last(CPU, "auto") is False
    assert autocast_dtype(CPU, "bf16") is torch.bfloat16 and autocast_dtype(CPU, "off") is None
    assert load_config(None, ["train.amp=off"]).train.amp is False  # YAML's off; autocast_dtype reads it as off
    assert autocast_dtype(CPU, False) is None
    assert use_channels_last(CPU, True) is True and use_channels_last(torch.device("cuda"), "auto") is True


@pytest.mark.parametrize("override, key", [("train.amp=fp8", "train.amp"), ("train.amp=on", "train.amp"),
                                           ("train.channels_last=maybe", "train.channels_last")])
def test_bad_device_options_name_their_key(override, key):
    with pytest.raises(UserError, match=f"'{key}'"):
        load_config(None, [override])


class Recorder:
    """Forward hook on the stem convolution: what the model really computed in."""

    def __init__(self, module: nn.Module):
        self.dtypes, self.channels_last = [], []
        module.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        self.dtypes.append(output.dtype)
        self.channels_last.append(inputs[0].is_contiguous(memory_format=torch.channels_last)
                                  and not inputs[0].is_contiguous())


def small_feeds(config, n=24):
    images, labels = pool_arrays(n=n, h=16, w=16)
    train_idx, val_idx = np.arange(n - 8), np.arange(n - 8, n)
    return build_feeds(config, images, labels, train_idx, val_idx, DistContext(CPU)), labels[val_idx]


def make_trainer(config, model, feeds, **kwargs) -> Trainer:
    return Trainer(config, Network(model, Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), feeds.augment),
                   RunContext(CPU), **kwargs)


@pytest.mark.parametrize("amp, channels_last, dtype", [("auto", "auto", torch.float32),
                                                       ("bf16", True, torch.bfloat16),
                                                       ("fp16", False, torch.float16)])
def test_training_runs_in_the_asked_dtype_and_memory_format(amp, channels_last, dtype):
    config = load_config(None, [f"train.amp={amp}", f"train.channels_last={str(channels_last).lower()}",
                                "train.batch_size=8", "train.epochs=1", "train.augment.mode=batched",
                                "train.feed=resident"])
    feeds, val_labels = small_feeds(config)
    model = timm.create_model("test_resnet", num_classes=3)
    seen = Recorder(model.conv1[0] if isinstance(model.conv1, nn.Sequential) else model.conv1)
    trainer = make_trainer(config, model, feeds)
    assert trainer.scaler.is_enabled() == (dtype == torch.float16)  # fp16 needs loss scaling, on a CPU too
    result = trainer.fit(feeds.train, feeds.val, val_labels)
    assert np.isfinite(result.history[0]["train_loss"])
    assert set(seen.dtypes) == {dtype}
    assert set(seen.channels_last) == {channels_last is True}
    weight = next(p for p in model.parameters() if p.dim() == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last) == (channels_last is True)


# fp32 here: bf16 CPU autocast is not bit-reproducible on this CPU (two identical test_resnet runs at 16 px
# differ, with non-finite values in one conv weight: oneDNN's bf16 kernels), so exactness is shown in fp32.
RESUME_STYLE = ["train.feed=resident", "train.augment.mode=batched", "train.channels_last=true"]


def test_a_resident_batched_channels_last_member_resumes_exactly(shapes, tmp_path, caplog):
    """Resident pool on the CPU device, batched augmentation and channels_last through scripts.train's job,
    paused and resumed: the resumed run ends with exactly the weights of the uninterrupted one."""
    settings = load_settings()
    cfg = member_config(tmp_path / "member.yaml", shapes)
    with caplog.at_level(logging.INFO, logger="members"):
        straight_dir, straight = train_member(load_config(cfg, ["name=straight", *RESUME_STYLE]), settings)
    assert "batched augmentation, pool resident" in caplog.text

    with pytest.raises(TrainingStopped) as stopped:
        train_member(load_config(cfg, ["name=paused", *RESUME_STYLE]), settings, stop_after_epoch=2)
    run_dir, config = resume_config(stopped.value.run_dir, [])
    assert (config.train.feed, config.train.channels_last) == ("resident", True)
    resumed_dir, entry = train_member(config, settings, resume_from=run_dir)

    for name in ("last.safetensors", "best.safetensors"):
        a, b = load_file(str(straight_dir / name)), load_file(str(resumed_dir / name))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert entry.metrics == straight.metrics
    history = [pd.read_csv(d / "history.csv").drop(columns=["train_img_per_s"]) for d in (straight_dir, resumed_dir)]
    pd.testing.assert_frame_equal(*history)
    assert [e.name for e in Registry(settings.registry).members()] == ["straight", "paused"]


# --- running out of memory in a training step -----------------------------------------------------------

class MemoryCap(nn.Module):
    """A real model on a device that holds at most `max_rows` images per forward pass: more raises the
    error CUDA raises (torch.OutOfMemoryError), so the retry runs here as it would on a full GPU."""

    def __init__(self, model: nn.Module, max_rows: int):
        super().__init__()
        self.model, self.max_rows, self.refused = model, max_rows, []

    def forward(self, x):
        if len(x) > self.max_rows:
            self.refused.append(len(x))
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {len(x)} images")
        return self.model(x)


def layer_norm_net() -> nn.Module:
    # No batch norm, so micro-batches must give the whole batch's gradients (up to float rounding).
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(1, 8), nn.GELU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


def test_out_of_memory_halves_into_micro_batches_with_the_same_optimizer_steps(caplog):
    config = load_config(None, ["train.batch_size=8", "train.epochs=2", "train.optimizer=sgd", "train.lr=0.1",
                                "train.augment.mode=batched", "train.augment.crop_scale=[1.0,1.0]",
                                "train.feed=resident", "train.channels_last=true"])
    feeds, val_labels = small_feeds(config, n=32)
    plain = make_trainer(config, layer_norm_net(), feeds)
    torch.manual_seed(1)
    expected = plain.fit(feeds.train, feeds.val, val_labels)

    capped = MemoryCap(layer_norm_net(), max_rows=3)
    trainer = make_trainer(config, capped, feeds)
    torch.manual_seed(1)
    with caplog.at_level(logging.WARNING, logger="members"):
        got = trainer.fit(feeds.train, feeds.val, val_labels)
    assert capped.refused[:2] == [8, 4]            # 8 rows refused, then 4: halved until it fits
    assert trainer.micro_batch == 2
    assert "micro-batches of 2" in caplog.text and "micro-batches of 4" in caplog.text
    for (name, a), b in zip(plain.net.state_dict().items(), capped.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert [h["train_loss"] for h in got.history] == pytest.approx([h["train_loss"] for h in expected.history],
                                                                   rel=1e-5)


def test_out_of_memory_with_one_image_is_a_one_line_error():
    config = load_config(None, ["train.batch_size=4", "train.epochs=1", "name=huge"])
    feeds, val_labels = small_feeds(config, n=12)
    trainer = make_trainer(config, MemoryCap(layer_norm_net(), max_rows=0), feeds)
    with pytest.raises(UserError, match="member 'huge': out of memory with a micro-batch of one image"):
        trainer.fit(feeds.train, feeds.val, val_labels)


def test_other_errors_are_not_mistaken_for_out_of_memory():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    config = load_config(None, ["train.batch_size=4", "train.epochs=1"])
    feeds, val_labels = small_feeds(config, n=12)
    broken = Broken()
    broken.weight = nn.Parameter(torch.zeros(1))  # an optimizer needs one parameter
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        make_trainer(config, broken, feeds).fit(feeds.train, feeds.val, val_labels)


# --- torch.compile ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_compiled_training_matches_eager_on_the_smallest_model():
    """train.compile=true through the Trainer on a CPU (inductor, C++ kernels): the compiled steps train
    the same weights as eager ones. Slow on a CPU (mostly the C++ compiler), so it is marked, and run."""
    from torch._dynamo.utils import counters

    base = ["train.batch_size=8", "train.epochs=1", "train.optimizer=sgd", "train.lr=0.05",
            "train.augment.mode=batched", "train.augment.crop_scale=[1.0,1.0]", "train.feed=resident"]
    feeds, val_labels = small_feeds(load_config(None, base), n=24)
    weights = {}
    for compiled in (False, True):
        config = load_config(None, [*base, f"train.compile={str(compiled).lower()}"])
        torch.manual_seed(0)
        trainer = make_trainer(config, timm.create_model("test_resnet", num_classes=3), feeds)
        torch.manual_seed(1)
        result = trainer.fit(feeds.train, feeds.val, val_labels)
        assert np.isfinite(result.history[0]["train_loss"])
        weights[compiled] = trainer.net.state_dict()
    assert isinstance(trainer.train_module, torch._dynamo.eval_frame.OptimizedModule)
    assert counters["stats"]["unique_graphs"] >= 1
    for name, value in weights[False].items():
        torch.testing.assert_close(weights[True][name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_a_run_saved_without_fp16_resumes_with_fp16(tmp_path):
    """A run paused on a CPU (no loss scaling saved) continues with train.amp=fp16 and a fresh GradScaler."""
    from members.resume import load_state

    base = ["train.batch_size=8", "train.epochs=2", "train.augment.mode=batched", "train.feed=resident"]
    feeds, val_labels = small_feeds(load_config(None, base))
    config = load_config(None, [*base, "train.amp=off"])
    paused = make_trainer(config, layer_norm_net(), feeds, checkpoints=Checkpoints.of(config, tmp_path))
    with pytest.raises(TrainingStopped):
        paused.fit(feeds.train, feeds.val, val_labels, stop_after_epoch=1)
    state = load_state(tmp_path)
    assert state.scaler == {}
    config = load_config(None, [*base, "train.amp=fp16"])
    resumed = make_trainer(config, layer_norm_net(), feeds, checkpoints=Checkpoints.of(config, tmp_path))
    result = resumed.fit(feeds.train, feeds.val, val_labels, resume=state)
    assert [h["epoch"] for h in result.history] == [1, 2] and resumed.scaler.is_enabled()


def test_out_of_memory_in_validation_halves_validation_only():
    """Rank 0 alone validates: its halving must not change how it trains (DDP ranks must step alike)."""
    class EvalCap(MemoryCap):
        def forward(self, x):
            return self.model(x) if self.training else super().forward(x)

    config = load_config(None, ["train.batch_size=8", "train.epochs=1", "train.feed=resident",
                                "train.augment.mode=batched"])
    feeds, val_labels = small_feeds(config)
    capped = EvalCap(layer_norm_net(), max_rows=3)
    trainer = make_trainer(config, capped, feeds)
    result = trainer.fit(feeds.train, feeds.val, val_labels)
    assert (trainer.micro_batch, trainer.eval_micro_batch) == (None, 2)
    assert capped.refused == [8, 4] and len(result.best_outputs.probs) == 8
