"""Test-time augmentation: named extra views of a batch, merged with equal weights on probabilities.

A setting is written as a comma list of view names, e.g. `flip` or `flip,shift`; `none`
means the plain image only. The plain image is always one of the views.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import UserError

if TYPE_CHECKING:
    import torch

# Shifting by 1/16 of the side moves content a few pixels at any input size, like a small crop jitter.
SHIFT_FRACTION = 1 / 16


def _flip(x: torch.Tensor) -> list[torch.Tensor]:
    return [x.flip(dims=[3])]


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Move the content by (dy, dx) pixels; the uncovered border repeats the edge pixels."""
    import torch.nn.functional as F  # lazy: a cached vote parses TTA settings without loading torch

    pad_y, pad_x = abs(dy), abs(dx)
    padded = F.pad(x, (pad_x, pad_x, pad_y, pad_y), mode="replicate")
    height, width = x.shape[-2:]
    top, left = pad_y - dy, pad_x - dx
    return padded[..., top:top + height, left:left + width]


def _shift(x: torch.Tensor) -> list[torch.Tensor]:
    dy = max(1, round(x.shape[-2] * SHIFT_FRACTION))
    dx = max(1, round(x.shape[-1] * SHIFT_FRACTION))
    return [_shifted(x, dy, dx), _shifted(x, -dy, -dx)]


VIEWS: dict[str, Callable[[torch.Tensor], list[torch.Tensor]]] = {"flip": _flip, "shift": _shift}
VIEW_HELP = {"flip": "horizontal mirror (1 view)",
             "shift": "content moved by 1/16 of the side, down-right and up-left (2 views)"}


@dataclass(frozen=True)
class TTA:
    names: tuple[str, ...] = ()   # extra views, in canonical order; the plain image is implied

    @property
    def spec(self) -> str:
        """The canonical text form, recorded in cache keys and cache files."""
        return ",".join(self.names) or "none"

    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = [x]
        for name in self.names:
            out.extend(VIEWS[name](x))
        return out

    def __bool__(self) -> bool:
        return bool(self.names)


def parse_tta(value: str | bool | None | TTA) -> TTA:
    """`None`/`False`/`"none"` → off; `True` → flip (the old boolean switch); `"flip,shift"` → both."""
    if isinstance(value, TTA):
        return value
    if value is None or value is False:
        return TTA()
    if value is True:
        return TTA(("flip",))
    names = {part.strip().lower() for part in str(value).split(",") if part.strip()}
    names.discard("none")
    unknown = sorted(names - set(VIEWS))
    if unknown:
        known = "; ".join(f"{k}: {v}" for k, v in VIEW_HELP.items())
        raise UserError(f"unknown TTA view '{unknown[0]}' (known views — {known}; or 'none')")
    return TTA(tuple(name for name in VIEWS if name in names))
