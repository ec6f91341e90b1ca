"""What a member needs from a decoded image: its input size, resize filter and normalisation.

Members are grouped by this, and every group's input is derived from ONE decoded batch:
images are decoded once at the largest size any member needs (per axis), and smaller
inputs are resized on the device with `F.interpolate(antialias=True)`.

Why the largest needed size rather than the native size: the largest group then sees
exactly the pixels it was trained on (training decodes with the same PIL resize into the
same kind of uint8 cache), the cache stays as small as the biggest input rather than the
photo, and images of mixed native sizes still stack into one array.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.entry import RegistryEntry
from core.errors import UserError

# Registry names → torch modes. Antialiasing makes a downscale average like PIL's resize does.
MODES = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest-exact"}


@dataclass(frozen=True)
class Preprocess:
    size: tuple[int, int]                 # (height, width)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    @classmethod
    def from_entry(cls, entry: RegistryEntry) -> Preprocess:
        spec = entry.input
        interpolation = spec.interpolation
        if interpolation not in MODES:
            raise UserError(f"member '{entry.name}': input interpolation '{interpolation}' is not supported "
                            f"(known: {', '.join(MODES)})")
        return cls(tuple(int(v) for v in spec.size), tuple(float(v) for v in spec.mean),
                   tuple(float(v) for v in spec.std), interpolation)

    @property
    def resize_key(self) -> tuple:
        return self.size, self.interpolation


def decode_size(preps: list[Preprocess]) -> tuple[int, int]:
    """The one size to decode at: big enough on each axis for every member."""
    return max(p.size[0] for p in preps), max(p.size[1] for p in preps)


def resize_batch(batch: torch.Tensor, size: tuple[int, int], interpolation: str = "bilinear") -> torch.Tensor:
    """uint8 NCHW → float NCHW in 0..255 at `size`.

    The result is rounded back to whole values so a member sees what a uint8 cache at its
    own size would have held, as in training.
    """
    x = batch.float()
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    mode = MODES[interpolation]
    antialias = mode in ("bilinear", "bicubic")
    kwargs = {"align_corners": False} if antialias else {}
    x = F.interpolate(x, size=tuple(size), mode=mode, antialias=antialias, **kwargs)
    return x.round_().clamp_(0, 255)
