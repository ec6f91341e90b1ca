"""What training and prediction both do on the device before and around the model: normalise a batch,
pick the autocast dtype and the memory format, recognise running out of memory. Kept here so neither
stage imports the other."""
from __future__ import annotations

import gc

import torch
from torch import nn

from core.errors import UserError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}


def autocast_dtype(device: torch.device, amp: str | bool = "auto") -> torch.dtype | None:
    """`auto`: bf16 where the GPU has it, fp16 (with a GradScaler) on older GPUs, fp32 on CPU.

    An explicit `bf16` or `fp16` is used on any device (CPU autocast runs both), which is how the
    CPU test suite runs the lines a GPU runs; `off` (or false: YAML's reading of a bare off) is fp32 everywhere.
    """
    if amp is False:
        amp = "off"
    if amp != "auto":
        if amp not in AMP_DTYPES:
            raise UserError(f"train.amp is {amp!r}; choose one of auto, {', '.join(AMP_DTYPES)}")
        if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise UserError(f"train.amp=bf16 but {torch.cuda.get_device_name(device)} has no bf16; "
                            "use train.amp=fp16 or auto")
        return AMP_DTYPES[amp]
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def use_channels_last(device: torch.device, setting: bool | str = "auto") -> bool:
    """`auto`: on a GPU only; on the CPUs we measured, oneDNN trains slower in channels_last."""
    if setting == "auto":
        return device.type == "cuda"
    return bool(setting)


def is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def free_device_memory(device: torch.device) -> None:
    """After an out-of-memory error: drop what the failed attempt left, so the retry finds the memory."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class Normalize(nn.Module):
    """uint8 (or 0..255 float) NCHW batch → normalised float, done on the device so workers ship bytes."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * 255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std
