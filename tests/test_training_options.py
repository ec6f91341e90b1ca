"""Training options: losses, class balance, batch order, batched augmentation, schedules, config checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score
from sklearn.utils.class_weight import compute_class_weight

from core.config import AugmentConfig, TrainConfig, load_config
from core.errors import UserError
from members.augment import BatchAugment, crop_boxes
from members.feeding import EpochOrder, FixedBatches
from members.losses import FocalLoss, SoftF1Loss, balanced_class_weights, build_loss
from members.trainer import lr_factor


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 5, generator=generator) * 3
    targets = torch.randint(0, 5, (64,), generator=generator)
    return logits, targets


# --- losses -------------------------------------------------------------------------------------

@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_focal_with_gamma_zero_is_torch_cross_entropy(batch, smoothing, weighted):
    logits, targets = batch
    weight = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.7]) if weighted else None
    focal = FocalLoss(0.0, weight, smoothing)(logits, targets)
    ce = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing)(logits, targets)
    torch.testing.assert_close(focal, ce)


def test_focal_loss_discounts_confident_correct_rows(batch):
    logits, _ = batch
    confident = logits.argmax(1)  # the model is right on every row, most of them confidently
    assert FocalLoss(2.0)(logits, confident) < 0.5 * FocalLoss(0.0)(logits, confident)


def test_soft_f1_on_one_hot_probabilities_is_one_minus_sklearn_macro_f1(batch):
    logits, targets = batch
    preds = logits.argmax(1)
    present = sorted(set(targets.tolist()) | set(preds.tolist()))
    expected = 1.0 - f1_score(targets, preds, average="macro", labels=present)
    assert SoftF1Loss()(logits * 1e4, targets).item() == pytest.approx(expected, abs=1e-4)


def test_soft_f1_has_gradients_towards_the_labels(batch):
    logits, targets = batch
    logits = logits.clone().requires_grad_(True)
    SoftF1Loss()(logits, targets).backward()
    towards_label = logits.grad.gather(1, targets[:, None])
    assert (towards_label < 0).float().mean() > 0.9  # raising the true class's logit lowers the loss


def test_build_loss_follows_the_config():
    weights = np.array([1.0, 2.0], dtype=np.float32)
    assert isinstance(build_loss(TrainConfig(loss="focal"), None), FocalLoss)
    assert isinstance(build_loss(TrainConfig(loss="soft_f1"), weights), SoftF1Loss)
    ce = build_loss(TrainConfig(label_smoothing=0.1), weights)
    assert ce.label_smoothing == 0.1 and ce.weight.tolist() == [1.0, 2.0]


def test_class_weights_are_sklearns_balanced_weights_and_a_missing_class_is_named():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    np.testing.assert_allclose(balanced_class_weights(labels, 3), expected, rtol=1e-6)
    with pytest.raises(UserError, match="class 'cat' has no training images"):
        balanced_class_weights(labels, 4, ["a", "b", "c", "cat"])


# --- which rows each epoch trains on --------------------------------------------------------------

def test_epoch_order_shards_are_disjoint_cover_the_rows_and_depend_only_on_the_epoch():
    rows, labels = np.arange(100, 140), np.zeros(200, dtype=int)
    ranks = [EpochOrder(rows, labels, batch_size=20, seed=3, rank=r, world=2) for r in range(2)]
    shards = [np.concatenate(order.batches(epoch=4)) for order in ranks]
    assert sorted(np.concatenate(shards).tolist()) == rows.tolist()
    assert np.array_equal(np.concatenate(ranks[0].batches(4)), shards[0])  # same epoch, same order
    assert not np.array_equal(np.concatenate(ranks[0].batches(5)), shards[0])


def test_epoch_order_drops_only_a_ragged_last_batch():
    order = EpochOrder(np.arange(37), np.zeros(37, dtype=int), batch_size=8, seed=0)
    assert len(order) == 4 and [len(b) for b in order.batches(1)] == [8, 8, 8, 8]
    small = EpochOrder(np.arange(5), np.zeros(5, dtype=int), batch_size=8, seed=0)
    assert [len(b) for b in small.batches(1)] == [5]
    assert [len(b) for b in FixedBatches(np.arange(37), 8).batches(0)] == [8, 8, 8, 8, 5]


def test_balanced_sampler_draws_every_class_about_equally():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    order = EpochOrder(np.arange(100), labels, batch_size=10, seed=0, balanced=True)
    drawn = np.concatenate([b for epoch in range(30) for b in order.batches(epoch)])
    share = np.bincount(labels[drawn], minlength=3) / len(drawn)
    np.testing.assert_allclose(share, [1 / 3] * 3, atol=0.05)


# --- batched augmentation on the device ------------------------------------------------------------

def images(n=6, h=12, w=10):
    return torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def test_full_crop_without_flip_is_the_identity_and_with_flip_a_mirror():
    x = images()
    same = BatchAugment(AugmentConfig(crop_scale=[1.0, 1.0], hflip=0.0))(x)
    mirrored = BatchAugment(AugmentConfig(crop_scale=[1.0, 1.0], hflip=1.0))(x)
    torch.testing.assert_close(same, x.float(), atol=1e-3, rtol=0)
    torch.testing.assert_close(mirrored, x.flip(-1).float(), atol=1e-3, rtol=0)


def test_crops_cover_the_requested_area_and_stay_inside_the_image():
    boxes = crop_boxes(4000, 24, 32, (0.25, 0.5))
    left, top, w, h = boxes.unbind(1)
    area = w * h
    assert area.min() >= 0.25 - 1e-5 and area.max() <= 0.5 + 1e-5
    assert left.min() >= 0 and top.min() >= 0 and (left + w).max() <= 1 + 1e-6 and (top + h).max() <= 1 + 1e-6


def test_a_crop_zooms_in_by_its_size():
    # A horizontal ramp: after a crop of width fraction w, the output spans w of the input's range.
    ramp = torch.linspace(0, 255, 64).expand(1, 3, 64, 64).repeat(200, 1, 1, 1)
    torch.manual_seed(0)
    out = BatchAugment(AugmentConfig(crop_scale=[0.36, 0.36]))(ramp.to(torch.uint8))
    span = (out[:, 0, 32, -1] - out[:, 0, 32, 0]) / 255
    assert span.min() > 0.4 and span.max() < 0.8  # sqrt(0.36 * ratio) with ratio in [3/4, 4/3]


def test_flip_probability_and_colour_jitter_range():
    torch.manual_seed(0)
    x = torch.arange(4, dtype=torch.uint8).repeat(400, 3, 4, 1) * 60  # left to right: 0, 60, 120, 180
    flipped = BatchAugment(AugmentConfig(crop_scale=[1.0, 1.0], hflip=0.5))(x)[:, 0, 0, 0] > 90
    assert 0.4 < flipped.float().mean() < 0.6
    jittered = BatchAugment(AugmentConfig(crop_scale=[1.0, 1.0], color_jitter=0.4))(images(200))
    assert jittered.min() >= 0 and jittered.max() <= 255
    assert not torch.allclose(jittered, images(200).float())


# --- schedules ----------------------------------------------------------------------------------

def test_warmup_then_cosine_step_and_constant():
    steps = 10
    cosine = lr_factor(TrainConfig(epochs=5, warmup_epochs=1, scheduler="cosine"), steps)
    assert [cosine(s) for s in range(steps)] == pytest.approx([(s + 1) / steps for s in range(steps)])
    assert cosine(steps) == pytest.approx(1.0) and cosine(5 * steps - 1) < 0.01
    step = lr_factor(TrainConfig(epochs=6, scheduler="step", step_size=2, step_gamma=0.5), steps)
    assert [step(e * steps) for e in range(6)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    constant = lr_factor(TrainConfig(epochs=3, warmup_epochs=1, scheduler="constant"), steps)
    assert constant(0) == pytest.approx(0.1) and constant(29) == 1.0


# --- config -------------------------------------------------------------------------------------

@pytest.mark.parametrize("override, key", [
    ("train.loss=mse", "train.loss"),
    ("train.class_balance=oversample", "train.class_balance"),
    ("train.ema=1.0", "train.ema"),
    ("train.grad_clip=0", "train.grad_clip"),
    ("train.scheduler=linear", "train.scheduler"),
    ("train.augment.mode=gpu", "train.augment.mode"),
    ("train.augment.crop_scale=[0.9, 0.2]", "train.augment.crop_scale"),
    ("train.feed=disk", "train.feed"),
])
def test_bad_training_options_name_their_key(override, key):
    with pytest.raises(UserError, match=f"'{key}'"):
        load_config(None, [override])


def test_optional_options_accept_null_and_numbers():
    config = load_config(None, ["train.ema=0.999", "train.grad_clip=2", "train.compile=true"])
    assert (config.train.ema, config.train.grad_clip, config.train.compile) == (0.999, 2.0, True)
    assert load_config(None, ["train.ema=null"]).train.ema is None
