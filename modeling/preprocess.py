"""What training and prediction both do to a batch before the model sees it: normalise on the device,
pick the autocast dtype. Kept here so neither stage imports the other."""
from __future__ import annotations

import torch
from torch import nn


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU has it, fp16 (with a GradScaler) on older GPUs, fp32 on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class Normalize(nn.Module):
    """uint8 (or 0..255 float) NCHW batch → normalised float, done on the device so workers ship bytes."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * 255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std
