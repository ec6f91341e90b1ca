"""The multi-member runner: one decode shared by every member, out-of-memory halving, TTA views."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torch import nn

from core.errors import UserError
from core.images import load_resized
from predict.batches import MemmapBatches, NvjpegBatches, make_batches
from predict.inference import EnsembleRunner
from predict.resize import Preprocess, decode_size, resize_batch
from predict.tta import parse_tta

CPU = torch.device("cpu")
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def tiny(arch: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(arch, pretrained=False, num_classes=5).eval()


def random_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


class RunsOutOfMemory(nn.Module):
    """A real model that, like a GPU, fails batches above `limit` rows with CUDA's out-of-memory message."""

    def __init__(self, model: nn.Module, limit: int):
        super().__init__()
        self.model, self.limit, self.refused = model, limit, []

    def forward(self, x):
        if len(x) > self.limit:
            self.refused.append(len(x))
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate a batch of {len(x)}")
        return self.model(x)


class Broken(nn.Module):
    def forward(self, x):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")


def test_out_of_memory_halves_the_batch_and_gives_the_same_result(caplog):
    images = MemmapBatches(random_images(37, 16), CPU)
    a, b = tiny("test_resnet", 0), tiny("resnet10t", 1)
    preps = [Preprocess((16, 16), *HALF), Preprocess((16, 16), *IMAGENET)]
    expected = EnsembleRunner([a, b], preps, CPU).run(images, batch_size=37)

    guarded = RunsOutOfMemory(a, limit=10)
    runner = EnsembleRunner([guarded, b], preps, CPU)
    with caplog.at_level(logging.WARNING, logger="predict"):
        got = runner.run(images, batch_size=32)
    assert guarded.refused == [32, 16]          # 32 → 16 → 8, then every batch fits
    assert runner.batch_size == 8
    assert "retrying with batch size 16" in caplog.text and "retrying with batch size 8" in caplog.text
    for e, g in zip(expected, got):
        assert g.shape == (37, 5)
        np.testing.assert_allclose(g, e, atol=1e-5)


def test_out_of_memory_at_batch_size_one_is_a_clear_error():
    runner = EnsembleRunner([RunsOutOfMemory(tiny("test_resnet", 0), limit=0)], [Preprocess((16, 16), *HALF)], CPU)
    with pytest.raises(UserError, match="out of memory with a batch of one image"):
        runner.run(MemmapBatches(random_images(3, 16), CPU), batch_size=2)


def test_other_errors_are_not_mistaken_for_out_of_memory():
    runner = EnsembleRunner([Broken()], [Preprocess((16, 16), *HALF)], CPU)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        runner.run(MemmapBatches(random_images(3, 16), CPU), batch_size=2)


def test_members_share_one_decode_at_the_largest_size(tmp_path):
    """Two sizes, one decode: the big member sees exactly its own-size pixels, the small one a close resize."""
    rng = np.random.default_rng(1)
    paths = []
    for i in range(12):
        # smooth photo-like content at 384x512, as the competition's photos are
        low = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
        path = tmp_path / "img" / f"{i}.jpg"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(low).resize((384, 512), Image.Resampling.BICUBIC).save(path, quality=90)
        paths.append(str(path))
    small, big = Preprocess((16, 12), *IMAGENET), Preprocess((32, 24), *HALF)
    size = decode_size([small, big])
    assert size == (32, 24)
    cache = tmp_path / "cache"
    shared = make_batches(paths, size, cache, CPU)
    assert len(list(cache.glob("*.u8"))) == 1      # one decode for both members

    batch = shared.fetch(0, len(paths))
    assert torch.equal(resize_batch(batch, big.size), batch.float())
    own_small = torch.from_numpy(np.stack([load_resized(p, small.size) for p in paths])).permute(0, 3, 1, 2).float()
    derived = resize_batch(batch, small.size)
    assert derived.shape == own_small.shape
    assert (derived - own_small).abs().mean() < 2.0   # grey levels, out of 255

    nets = [tiny("resnet10t", 2), tiny("test_resnet", 3)]
    together = EnsembleRunner(nets, [small, big], CPU).run(shared, batch_size=5)
    alone = EnsembleRunner([nets[1]], [big], CPU).run(make_batches(paths, big.size, cache, CPU), batch_size=5)
    np.testing.assert_allclose(together[1], alone[0], atol=1e-5)


def test_tta_averages_probabilities_over_the_views():
    net = tiny("test_resnet", 4)
    images = random_images(6, 16, seed=2)
    prep = Preprocess((16, 16), *HALF)
    got = EnsembleRunner([net], [prep], CPU, tta="flip,shift", channels_last=False).run(
        MemmapBatches(images, CPU), batch_size=4)[0]

    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    d = 1  # 16 px / 16
    padded = torch.nn.functional.pad(x, (d, d, d, d), mode="replicate")
    views = [x, x.flip(3), padded[..., :16, :16], padded[..., 2:, 2:]]
    with torch.no_grad():
        expected = torch.stack([net(v).softmax(1) for v in views]).mean(0).log().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    plain = EnsembleRunner([net], [prep], CPU).run(MemmapBatches(images, CPU), batch_size=4)[0]
    assert np.abs(plain - got).max() > 1e-4    # the views changed something


def test_tta_setting_is_parsed_to_one_canonical_name():
    assert parse_tta("shift, FLIP").spec == "flip,shift"
    assert parse_tta(True).spec == "flip" and parse_tta(None).spec == "none" and parse_tta("none").spec == "none"
    with pytest.raises(UserError, match="unknown TTA view 'rotate'"):
        parse_tta("flip,rotate")


def test_gpu_decoder_routes_jpegs_and_falls_back_to_pil(tmp_path):
    """The nvjpeg source's logic, run with torchvision's CPU JPEG decoder (no GPU here)."""
    rng = np.random.default_rng(3)
    paths = []
    for i, ext in enumerate([".jpg", ".png", ".jpeg"]):
        low = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
        path = tmp_path / f"{i}{ext}"
        Image.fromarray(low).resize((96, 128), Image.Resampling.BICUBIC).save(path)
        paths.append(str(path))
    got = NvjpegBatches(paths, (32, 24), CPU, threads=2).fetch(0, 3)
    assert got.shape == (3, 3, 32, 24) and got.dtype == torch.uint8
    pil = torch.from_numpy(np.stack([load_resized(p, (32, 24)) for p in paths])).permute(0, 3, 1, 2)
    assert torch.equal(got[1], pil[1])                             # the PNG went through PIL
    assert (got.float() - pil.float()).abs().mean() < 1.0          # JPEGs: another decoder, same picture
    with pytest.raises(UserError, match="needs a CUDA device"):
        make_batches(paths, (32, 24), tmp_path / "cache", CPU, decoder="nvjpeg")
