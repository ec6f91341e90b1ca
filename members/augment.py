"""Augmentation of decoded uint8 images, so an image is never decoded again.

Two paths with the same knobs (`train.augment`): `per_sample` runs torchvision v2
transforms on each CHW image inside the DataLoader (CPU); `batched` draws every
sample's crop, flip and jitter at once and applies them to the whole uint8 batch
on the training device with one `grid_sample` call. `auto` picks batched on a GPU.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.transforms import v2

from core.config import AugmentConfig

RATIO = (3 / 4, 4 / 3)      # torchvision's RandomResizedCrop default aspect ratios
CROP_TRIES = 10             # as torchvision: draw up to 10 boxes, keep the first that fits
GREY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


def resolve_mode(cfg: AugmentConfig, device: torch.device) -> str:
    if cfg.mode == "auto":
        return "batched" if device.type == "cuda" else "per_sample"
    return cfg.mode


def train_transform(size: tuple[int, int], cfg: AugmentConfig) -> v2.Transform:
    steps: list[v2.Transform] = [v2.RandomResizedCrop(list(size), scale=tuple(cfg.crop_scale), antialias=True)]
    if cfg.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(cfg.hflip))
    if cfg.color_jitter > 0:
        j = cfg.color_jitter
        steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j))
    return v2.Compose(steps)


class ArrayDataset(torch.utils.data.Dataset):
    """Rows of a decoded uint8 [N, H, W, 3] array, returned as CHW uint8 tensors."""

    def __init__(self, images, labels, transform: v2.Transform | None = None):
        self.images = images
        # 2-D labels are packed distillation targets (members.losses.pack_targets): keep them float.
        labels = torch.as_tensor(labels)
        self.labels = labels.long() if labels.dim() == 1 else labels.float()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = torch.from_numpy(self.images[index].copy()).permute(2, 0, 1)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]


def crop_boxes(n: int, height: int, width: int, scale: tuple[float, float]) -> torch.Tensor:
    """Random-resized-crop boxes as fractions of the image, [n, 4] = (left, top, width, height).

    Same sampling as torchvision's RandomResizedCrop (area fraction uniform in `scale`,
    log aspect ratio uniform, the first of 10 tries that fits, else a centre crop), but
    vectorised and sub-pixel. Drawn on the CPU generator so runs and resumes repeat exactly.
    """
    area = torch.empty(n, CROP_TRIES).uniform_(scale[0], scale[1])
    ratio = torch.exp(torch.empty(n, CROP_TRIES).uniform_(math.log(RATIO[0]), math.log(RATIO[1])))
    w = torch.sqrt(area * ratio * (height / width))
    h = torch.sqrt(area / ratio * (width / height))
    fits = (w <= 1.0) & (h <= 1.0)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    fallback_w, fallback_h = _centre_crop(height, width)
    found = fits.any(1)
    w = torch.where(found, w, torch.full_like(w, fallback_w))
    h = torch.where(found, h, torch.full_like(h, fallback_h))
    left = torch.rand(n) * (1.0 - w)
    top = torch.rand(n) * (1.0 - h)
    left = torch.where(found, left, (1.0 - w) / 2)
    top = torch.where(found, top, (1.0 - h) / 2)
    return torch.stack([left, top, w, h], 1)


def _centre_crop(height: int, width: int) -> tuple[float, float]:
    in_ratio = width / height
    if in_ratio < RATIO[0]:
        return 1.0, in_ratio / RATIO[0]
    if in_ratio > RATIO[1]:
        return RATIO[1] / in_ratio, 1.0
    return 1.0, 1.0


def _grey(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (GREY[0] * r + GREY[1] * g + GREY[2] * b).unsqueeze(1)


def _factors(n: int, strength: float) -> torch.Tensor:
    return torch.empty(n, 1, 1, 1).uniform_(max(0.0, 1.0 - strength), 1.0 + strength)


class BatchAugment(nn.Module):
    """Crop, flip and colour-jitter a uint8 NCHW batch on its own device; returns float in [0, 255].

    Crop and flip are one affine map per sample (a flip is a negative x scale), so the
    whole batch is resampled by a single `grid_sample`. Parameters are drawn on the CPU
    (a few numbers per image) and shipped with the batch.
    """

    def __init__(self, cfg: AugmentConfig):
        super().__init__()
        self.scale = (float(cfg.crop_scale[0]), float(cfg.crop_scale[1]))
        self.hflip = float(cfg.hflip)
        self.jitter = float(cfg.color_jitter)

    def affine(self, n: int, height: int, width: int) -> torch.Tensor:
        left, top, w, h = crop_boxes(n, height, width, self.scale).unbind(1)
        flip = torch.rand(n) < self.hflip
        sign = torch.where(flip, -1.0, 1.0)
        theta = torch.zeros(n, 2, 3)
        # grid_sample's normalised coordinates run from -1 to 1 across the image (align_corners=False).
        theta[:, 0, 0] = w * sign
        theta[:, 0, 2] = 2 * left + w - 1
        theta[:, 1, 1] = h
        theta[:, 1, 2] = 2 * top + h - 1
        return theta

    def jitter_colours(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        brightness, contrast, saturation = (_factors(n, self.jitter).to(x.device) for _ in range(3))
        x = (x * brightness).clamp(0, 255)
        mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * contrast + mean).clamp(0, 255)
        grey = _grey(x)
        return ((x - grey) * saturation + grey).clamp(0, 255)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, _, height, width = images.shape
        theta = self.affine(n, height, width).to(images.device)
        x = images.float()
        grid = F.affine_grid(theta, [n, x.shape[1], height, width], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return self.jitter_colours(x) if self.jitter > 0 else x
