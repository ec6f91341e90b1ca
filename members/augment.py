"""Per-sample augmentation on uint8 tensors, so decoded images are never decoded again."""
from __future__ import annotations

import torch
from torchvision.transforms import v2

from members.config import AugmentConfig


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
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = torch.from_numpy(self.images[index].copy()).permute(2, 0, 1)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]
