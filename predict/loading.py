"""Rebuild a registered member: verify its weights' hash, build the architecture, load strictly."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.config import MemberConfig, load_config
from core.entry import RegistryEntry
from core.errors import UserError
from core.registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from modeling.preprocess import Normalize


@dataclass
class MemberInfo:
    """A registered member's entry and config: enough to find its rows without loading weights."""
    name: str
    entry: RegistryEntry
    config: MemberConfig

    @property
    def size(self) -> tuple[int, int]:
        return self.entry.input.size

    @property
    def classes(self) -> list[str]:
        return list(self.entry.classes)


@dataclass
class LoadedMember(MemberInfo):
    model: nn.Module | None = None
    normalize: Normalize | None = None


def member_info(registry: Registry, entry: RegistryEntry) -> MemberInfo:
    """A member's entry and config; a trained member's weights must still be there even when its
    predictions are cached (a vote never stands on a member that can no longer be reproduced)."""
    if not entry.is_imported:
        weights_file(registry, entry)
    return MemberInfo(entry.name, entry, member_config(registry, entry))


def weights_file(registry: Registry, entry: RegistryEntry) -> Path:
    weights = registry.resolve(entry.weights)
    if not weights.exists():
        raise UserError(f"member '{entry.name}': weights file {weights} is missing")
    return weights


def member_config(registry: Registry, entry: RegistryEntry) -> MemberConfig:
    path = registry.resolve(entry.config)
    if not path.exists():
        raise UserError(f"member '{entry.name}': its config {path} is missing")
    return load_config(path)


def load_member(registry: Registry, entry: RegistryEntry) -> LoadedMember:
    # lazy: modeling/ loads torch, timm and torchvision; a vote over cached members reads only entries and configs
    from modeling.checkpoint import load_state_dict
    from modeling.models import build_model
    from modeling.preprocess import Normalize
    if entry.is_imported:
        raise UserError(f"member '{entry.name}' is imported predictions: it has no weights to load")
    weights = weights_file(registry, entry)
    state = load_state_dict(weights, expected_sha256=entry.sha256)
    try:
        built = build_model(entry.arch, len(entry.classes))
    except UserError as err:
        raise UserError(f"member '{entry.name}': {err}") from err
    try:
        built.model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise UserError(f"member '{entry.name}': weights {weights} do not fit {entry.arch}") from err
    built.model.eval()
    return LoadedMember(entry.name, entry, member_config(registry, entry), built.model,
                        Normalize(entry.input.mean, entry.input.std))
