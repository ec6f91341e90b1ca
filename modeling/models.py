"""Model factory: timm names, or `torchvision:<name>` with a fresh classifier head.

Weights never come from a hub: a pretrained start needs a local file, and
without one the model is built from scratch and the caller is told so.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torchvision
from timm.data import resolve_model_data_config
from torch import nn

from core.errors import UserError
from modeling.checkpoint import load_state_dict

TORCHVISION_PREFIX = "torchvision:"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class BuiltModel:
    model: nn.Module
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    origin: str  # how the weights were initialised, said to the user


def _unknown_arch(arch: str, known: list[str]) -> UserError:
    close = difflib.get_close_matches(arch, known, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return UserError(f"unknown architecture '{arch}'{hint}")


def find_head(model: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """The classifier is the last Linear layer in registration order, whatever its name."""
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            found = name
    if found is None:
        raise UserError(f"{model.__class__.__name__} has no Linear classifier head to replace")
    parent_name, _, attr = found.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    return parent, attr, getattr(parent, attr)


def replace_head(model: nn.Module, num_classes: int) -> nn.Linear:
    parent, attr, old = find_head(model)
    head = nn.Linear(old.in_features, num_classes)
    nn.init.xavier_uniform_(head.weight)
    nn.init.zeros_(head.bias)
    setattr(parent, attr, head)
    return head


def _check_file(path: str | None) -> Path | None:
    if path is None:
        return None
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"pretrained weights file {file} does not exist (weights are never downloaded)")
    return file


def _torchvision(name: str, num_classes: int, file: Path | None) -> BuiltModel:
    known = torchvision.models.list_models()
    if name not in known:
        raise _unknown_arch(f"{TORCHVISION_PREFIX}{name}", [f"{TORCHVISION_PREFIX}{k}" for k in known])
    model = torchvision.models.get_model(name, weights=None)
    origin = "built from scratch (no pretrained_file given)"
    if file is not None:
        try:
            model.load_state_dict(load_state_dict(file))
        except RuntimeError as err:
            raise UserError(f"pretrained weights {file} do not fit torchvision:{name}: {str(err).splitlines()[0]}") from err
        origin = f"pretrained from {file}"
    replace_head(model, num_classes)
    return BuiltModel(model, IMAGENET_MEAN, IMAGENET_STD, origin)


def _timm(arch: str, num_classes: int, file: Path | None, drop_rate: float) -> BuiltModel:
    if not timm.is_model(arch):
        raise _unknown_arch(arch, timm.list_models())
    kwargs = {"num_classes": num_classes, "drop_rate": drop_rate}
    if file is not None:
        try:
            model = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay={"file": str(file)}, **kwargs)
        except Exception as err:  # timm loads with weights_only=True; a pickle, a broken or a foreign file lands here
            reason = (str(err).strip().splitlines() or [err.__class__.__name__])[0].split(". ")[0]
            unsafe = "weights_only" in str(err) or err.__class__.__name__ == "UnpicklingError"
            why = " (only safetensors or plain tensor files are loaded; pickled objects never run)" if unsafe else ""
            raise UserError(f"pretrained weights {file} were refused for {arch}: {reason}{why}") from err
        origin = f"pretrained from {file}"
    else:
        model = timm.create_model(arch, pretrained=False, **kwargs)
        origin = "built from scratch (no pretrained_file given)"
    cfg = resolve_model_data_config(model)
    return BuiltModel(model, tuple(cfg["mean"]), tuple(cfg["std"]), origin)


def build_model(arch: str, num_classes: int, pretrained_file: str | None = None, drop_rate: float = 0.0) -> BuiltModel:
    file = _check_file(pretrained_file)
    if arch.startswith(TORCHVISION_PREFIX):
        return _torchvision(arch[len(TORCHVISION_PREFIX):], num_classes, file)
    return _timm(arch, num_classes, file, drop_rate)


def check_arch(arch: str) -> None:
    """Fail fast on a typo before any data is touched."""
    if arch.startswith(TORCHVISION_PREFIX):
        name = arch[len(TORCHVISION_PREFIX):]
        known = torchvision.models.list_models()
        if name not in known:
            raise _unknown_arch(arch, [f"{TORCHVISION_PREFIX}{k}" for k in known])
    elif not timm.is_model(arch):
        raise _unknown_arch(arch, timm.list_models())


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def to_device_format(model: nn.Module, device: torch.device) -> nn.Module:
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model
