"""Optimizers and learning-rate schedules, each registered under the name `train.optimizer` /
`train.scheduler` gives (core.extensions); the parameter groups every optimizer is built on.

Adding an optimizer or a schedule is one registered function here: the config check and the
error messages read OPTIMIZERS and SCHEDULERS.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from core.errors import UserError
from core.extensions import OPTIMIZERS, SCHEDULERS
from modeling.models import head_parameter_names
from modeling.timm_lib import param_groups_layer_decay


# Each optimizer takes the parameter groups (each with its own lr) and the train config.
@OPTIMIZERS.register("adamw", "AdamW, weight decay train.weight_decay")
def _adamw(groups: list[dict], cfg) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("sgd", "SGD with Nesterov momentum train.momentum")
def _sgd(groups: list[dict], cfg) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)


# Each schedule gives the multiplier of train.lr at an optimizer step after the linear warm-up.
@SCHEDULERS.register("cosine", "cosine decay to 0 over the remaining epochs")
def _cosine(cfg, step: int, warmup: int, total: int, steps_per_epoch: int) -> float:
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@SCHEDULERS.register("step", "x train.step_gamma every train.step_size epochs")
def _step(cfg, step: int, warmup: int, total: int, steps_per_epoch: int) -> float:
    return cfg.step_gamma ** ((step // max(1, steps_per_epoch)) // cfg.step_size)


@SCHEDULERS.register("constant", "train.lr throughout")
def _constant(cfg, step: int, warmup: int, total: int, steps_per_epoch: int) -> float:
    return 1.0


def lr_factor(cfg, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of train.lr at each optimizer step: linear warm-up, then cosine, step or constant."""
    warmup = cfg.warmup_epochs * steps_per_epoch
    total = cfg.epochs * steps_per_epoch

    after = SCHEDULERS.get(cfg.scheduler)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return after(cfg, step, warmup, total, steps_per_epoch)

    return factor


def head_params(model: nn.Module, needed: bool) -> set[str]:
    """The head's parameter names; a model without a Linear head is fine unless a head setting needs one."""
    try:
        return head_parameter_names(model)
    except UserError:
        if needed:
            raise
        return set()


def parameter_groups(model: nn.Module, cfg) -> list[dict]:
    """Optimizer groups: layer-wise lr decay (timm) when asked, the head at lr x lr_head_multiplier.

    Each group carries a `name` and its own `lr`, so LambdaLR scales every group from its own base."""
    head = head_params(model, needed=cfg.lr_head_multiplier != 1.0)
    names = {id(p): n for n, p in model.named_parameters()}
    if cfg.layer_decay is not None:
        if not hasattr(model, "group_matcher"):
            raise UserError(f"train.layer_decay needs a timm model that groups its layers (group_matcher); "
                            f"{model.__class__.__name__} has none: drop train.layer_decay or pick a timm arch")
        base = param_groups_layer_decay(model, weight_decay=cfg.weight_decay, layer_decay=cfg.layer_decay)
        base = [dict(g, name=f"layer{i}") for i, g in enumerate(base)]
    else:
        base = [{"params": [p for p in model.parameters()], "weight_decay": cfg.weight_decay, "lr_scale": 1.0,
                 "name": "all"}]
    groups = []
    for group in base:
        for is_head in (False, True):
            params = [p for p in group["params"] if (names[id(p)] in head) == is_head]
            if params:
                scale = group["lr_scale"] * (cfg.lr_head_multiplier if is_head else 1.0)
                part = "head" if is_head else "backbone"
                name = part if len(base) == 1 else f"{group['name']}/{part}"
                groups.append({"params": params, "weight_decay": group["weight_decay"], "lr": cfg.lr * scale,
                               "name": name})
    return groups


def describe_groups(optimizer: torch.optim.Optimizer) -> str:
    parts = [f"{g['name']}: {sum(p.numel() for p in g['params']):,} params lr {g['lr']:.3g} wd {g['weight_decay']:g}"
             for g in optimizer.param_groups]
    return f"optimizer {optimizer.__class__.__name__}, {len(parts)} parameter groups: " + "; ".join(parts)


def make_optimizer(model: nn.Module, cfg) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(cfg.optimizer)(parameter_groups(model, cfg), cfg)
