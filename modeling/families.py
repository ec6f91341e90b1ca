"""Model families: which library builds a `model.arch` name, registered in one table.

`model.arch` is a timm name (`resnet18`, `convnext_nano.in12k`) unless a family's prefix says
otherwise (`torchvision:resnet18`). Each family registers here how its names are spelled,
which names it knows, and whether `model.pretrained=true` can fetch its weights from the
Hugging Face hub; modeling/models.py attaches the function that builds it (`Family.build`).
Adding a family is one `register(...)` plus its builder; the name check, the "did you mean"
hint, the hub refusal and the build dispatch all read this table.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

from core.errors import UserError

TORCHVISION_PREFIX = "torchvision:"


@dataclass
class Family:
    name: str
    prefix: str                       # how model.arch marks it; "" for the default family (timm)
    hub_weights: bool                 # model.pretrained=true can fetch its weights from the hub
    known: Callable[[], list[str]]    # every architecture it can build (without the prefix)
    is_model: Callable[[str], bool] = field(default=None)  # cheaper membership test when the library has one
    build: Callable | None = None     # set by modeling/models.py: (name, num_classes, state, origin, keep_head,
    #                                   drop_rate) -> BuiltModel

    def has(self, name: str) -> bool:
        return self.is_model(name) if self.is_model else name in self.known()


FAMILIES: list[Family] = []


def register(family: Family) -> Family:
    """Prefixed families are matched first; the one family without a prefix takes every other name."""
    FAMILIES.append(family)
    FAMILIES.sort(key=lambda f: f.prefix == "")
    return family


def family_of(arch: str) -> tuple[Family, str]:
    """The family that builds `arch`, and the architecture's name inside that family."""
    for family in FAMILIES:
        if family.prefix and arch.startswith(family.prefix):
            return family, arch[len(family.prefix):]
    return FAMILIES[-1], arch


def check_arch(arch: str) -> None:
    """Fail fast on a typo before any data is touched, with the closest names the family knows."""
    family, name = family_of(arch)
    if not family.has(name):
        known = [f"{family.prefix}{k}" for k in family.known()]
        close = difflib.get_close_matches(arch, known, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"unknown architecture '{arch}'{hint}")


def _torchvision_models() -> list[str]:
    import torchvision  # imported when a torchvision name is checked: timm-only runs do not pay for it

    return torchvision.models.list_models()


def _timm_models() -> list[str]:
    from modeling.timm_lib import list_models

    return list_models()


def _timm_is_model(name: str) -> bool:
    from modeling.timm_lib import is_model

    return is_model(name)


TORCHVISION = register(Family("torchvision", TORCHVISION_PREFIX, hub_weights=False, known=_torchvision_models))
TIMM = register(Family("timm", "", hub_weights=True, known=_timm_models, is_model=_timm_is_model))
