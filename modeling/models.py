"""Model factory: timm names, or `torchvision:<name>`, with a fresh Xavier classifier head.

The starting weights (hub cache, local file, another member: modeling.pretrained) are read
here through safetensors or torch.load(weights_only=True) only, then handed to timm's own
loading path or to torchvision's load_state_dict.
"""
from __future__ import annotations

from dataclasses import dataclass

import torchvision
from torch import nn

from core.errors import UserError
from modeling.checkpoint import load_state_dict
from modeling.families import TIMM, TORCHVISION, check_arch, family_of
from modeling.pretrained import WeightsOrigin, resolve_file
from modeling.timm_lib import create_model, get_pretrained_cfg, resolve_model_data_config

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class BuiltModel:
    model: nn.Module
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    origin: str  # how the weights were initialised, said to the user
    weights: WeightsOrigin | None = None  # the same, for the registry entry


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


def init_head(head: nn.Module) -> None:
    """Xavier-uniform weights and a zero bias: the fine-tuning head, whatever the architecture."""
    if getattr(head, "weight", None) is not None and head.weight.ndim >= 2:
        nn.init.xavier_uniform_(head.weight)
    if getattr(head, "bias", None) is not None:
        nn.init.zeros_(head.bias)


def replace_head(model: nn.Module, num_classes: int) -> nn.Linear:
    parent, attr, old = find_head(model)
    head = nn.Linear(old.in_features, num_classes)
    init_head(head)
    setattr(parent, attr, head)
    return head


def _timm_classifiers(model: nn.Module) -> list[nn.Module]:
    found = model.get_classifier()
    return [m for m in (found if isinstance(found, (tuple, list)) else (found,)) if isinstance(m, nn.Module)]


def head_names(model: nn.Module) -> list[str]:
    """Dotted names of the classifier module(s): timm's get_classifier(), else the last Linear."""
    if hasattr(model, "get_classifier"):
        wanted = {id(m) for m in _timm_classifiers(model)}
        names = [name for name, module in model.named_modules() if id(module) in wanted and name]
        if names:
            return names
    parent, attr, _ = find_head(model)
    prefix = next((name for name, module in model.named_modules() if module is parent), "")
    return [f"{prefix}.{attr}" if prefix else attr]


def head_parameter_names(model: nn.Module) -> set[str]:
    heads = tuple(f"{name}." for name in head_names(model))
    return {name for name, _ in model.named_parameters() if name.startswith(heads)}


def _file_head_size(state: dict, head_keys: list[str]) -> int | None:
    sizes = {state[f"{key}.weight"].shape[0] for key in head_keys if f"{key}.weight" in state}
    return sizes.pop() if len(sizes) == 1 else None


def _fit_error(origin: WeightsOrigin, arch: str, err: Exception) -> UserError:
    reason = (str(err).strip().splitlines() or [err.__class__.__name__])[0]
    return UserError(f"pretrained weights {origin.path} do not fit {arch}: {reason[:300]}")


def _decide_head(file_classes: int | None, num_classes: int, keep_head: bool, origin: WeightsOrigin) -> bool:
    """Whether the file's head is kept: only when asked and already of our size."""
    if not keep_head or origin.kind == "scratch":
        return False
    if file_classes != num_classes:
        raise UserError(f"model.keep_head: true, but the head in {origin.path} has {file_classes or 'no'} outputs and the "
                        f"data has {num_classes} classes; drop keep_head and a fresh head is trained")
    return True


def _torchvision(name: str, num_classes: int, state: dict | None, origin: WeightsOrigin,
                 keep_head: bool, drop_rate: float) -> BuiltModel:
    check_arch(f"{TORCHVISION.prefix}{name}")
    model = torchvision.models.get_model(name, weights=None)
    file_classes = None
    if state is not None:
        file_classes = _file_head_size(state, head_names(model))
        if file_classes is not None and file_classes != find_head(model)[2].out_features:
            replace_head(model, file_classes)  # a fine-tuned file: its head decides the shape it loads into
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise _fit_error(origin, f"{TORCHVISION.prefix}{name}", err) from err
    if not _decide_head(file_classes, num_classes, keep_head, origin):
        replace_head(model, num_classes)
    return BuiltModel(model, IMAGENET_MEAN, IMAGENET_STD, origin.describe(), origin)


def _timm(arch: str, num_classes: int, state: dict | None, origin: WeightsOrigin, keep_head: bool,
          drop_rate: float) -> BuiltModel:
    check_arch(arch)
    file_classes = None
    if state is None:
        model = create_model(arch, pretrained=False, num_classes=num_classes, drop_rate=drop_rate)
    else:
        cfg = get_pretrained_cfg(arch)
        keys = [cfg.classifier] if cfg and isinstance(cfg.classifier, str) else list(cfg.classifier or ()) if cfg else []
        file_classes = _file_head_size(state, keys)
        if file_classes is None:  # a headless backbone: lend it a scratch head so the load stays strict
            scratch = create_model(arch, pretrained=False, num_classes=num_classes).state_dict()
            heads = tuple(f"{key}." for key in keys)
            state = {**{k: v for k, v in scratch.items() if k.startswith(heads)}, **state}
        try:
            # timm's own loading path (its filter_fn, input-conv adaptation, strict load) on the state dict we
            # read safely; built at the file's head size so every key, the head included, must fit.
            size = file_classes or num_classes
            model = create_model(arch, pretrained=True, num_classes=size, drop_rate=drop_rate,
                                 pretrained_cfg_overlay={"state_dict": state, "num_classes": size})
        except (RuntimeError, KeyError, ValueError, AssertionError) as err:
            raise _fit_error(origin, arch, err) from err
        model.pretrained_cfg.pop("state_dict", None)  # the model must not hold a second copy of the weights
    if not _decide_head(file_classes, num_classes, keep_head, origin):
        model.reset_classifier(num_classes)
        for head in _timm_classifiers(model):
            init_head(head)
    cfg = resolve_model_data_config(model)
    return BuiltModel(model, tuple(cfg["mean"]), tuple(cfg["std"]), origin.describe(), origin)


def build_model(arch: str, num_classes: int, pretrained_file: str | None = None, drop_rate: float = 0.0,
                start: WeightsOrigin | None = None, keep_head: bool = False) -> BuiltModel:
    """A model with `num_classes` outputs, from `start` (see modeling.pretrained) or from scratch.

    The head is always a fresh Xavier-initialised layer unless `keep_head` and the file's head
    already has `num_classes` outputs."""
    if start is None:
        start = resolve_file(pretrained_file) if pretrained_file else WeightsOrigin("scratch")
    state = None
    if start.kind != "scratch":
        state = load_state_dict(start.path, expected_sha256=start.sha256)
    family, name = family_of(arch)
    return family.build(name, num_classes, state, start, keep_head, drop_rate)


# Each family's builder beside its code; modeling/families.py holds the table of names and prefixes.
TORCHVISION.build = _torchvision
TIMM.build = _timm


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
