"""The member config's value checks: every number and name the schema accepts must also be one
torch, numpy, the data loader and the output folders accept, so a bad value is one line naming
its key, refused before the data scan rather than after it as a traceback."""
from __future__ import annotations

import math

from core.config_schema import DistillConfig, MemberConfig, TrainConfig
from core.errors import UserError
from core.limits import MAX_NEAR_DUPLICATE_DISTANCE, image_size_problem
from core.names import member_name_problem, name_problem, shown


def check_values(config: MemberConfig, origin: str) -> None:
    """Refuse the first value out of its range, naming the key and where it came from."""
    problem = member_name_problem(config.name)  # first: the same rule the registry applies after training
    if problem:
        raise UserError(f"config key 'name' in {origin} is {shown(config.name)}: it {problem}")
    problem = image_size_problem(config.data.image_size)
    if problem:
        raise UserError(f"config key 'data.image_size' in {origin} {problem}")
    split = config.data.split
    problem = name_problem(split.name)  # it names splits/<name>.csv
    if problem:
        raise UserError(f"config key 'data.split.name' in {origin} is {shown(split.name)}: it {problem}")
    if split.n_folds < 2 or not 0 <= split.fold < split.n_folds:
        raise UserError(f"config keys 'data.split.n_folds/fold' in {origin}: need n_folds >= 2 and 0 <= fold < n_folds")
    if not 0 <= config.data.near_duplicate_distance <= MAX_NEAR_DUPLICATE_DISTANCE:
        raise UserError(f"config key 'data.near_duplicate_distance' in {origin} must lie in "
                        f"0..{MAX_NEAR_DUPLICATE_DISTANCE} (bits of a 64-bit hash)")
    if config.train.epochs < 1 or config.train.batch_size < 1:
        raise UserError(f"config keys 'train.epochs' and 'train.batch_size' in {origin} must be >= 1")
    _check_train_values(config.train, origin)
    _check_bounds(config, origin)
    _check_distill_values(config.distill, origin)
    _check_pseudo_values(config, origin)


MAX_SEED = 2**32 - 1  # numpy's and torch's seeds are 32-bit unsigned
MAX_WORKERS = 256


def _within(value: float, low: float, high: float = math.inf, low_open: bool = False) -> bool:
    """A finite number (NaN fails every test) in [low, high] ((low, high] with low_open)."""
    return math.isfinite(value) and (value > low if low_open else value >= low) and value <= high


def _check_bounds(config: MemberConfig, origin: str) -> None:
    """Every number the schema accepts must also be one torch, numpy and the data loader accept,
    so a bad value is refused before the data scan, not after it as a traceback."""
    t, es, s = config.train, config.early_stopping, config.data.split
    checks = [
        ("train.lr", _within(t.lr, 0.0, 10.0, low_open=True), "must be a number in (0, 10], e.g. 0.001"),
        ("train.weight_decay", _within(t.weight_decay, 0.0, 10.0), "must be a number in [0, 10]"),
        ("train.momentum", _within(t.momentum, 0.0, 1.0), "must be in [0, 1]"),
        ("train.seed", 0 <= t.seed <= MAX_SEED, f"must be in 0..{MAX_SEED}"),
        ("data.split.seed", 0 <= s.seed <= MAX_SEED, f"must be in 0..{MAX_SEED}"),
        ("train.num_workers", 0 <= t.num_workers <= MAX_WORKERS, f"must be in 0..{MAX_WORKERS}"),
        ("train.epochs", t.epochs <= 100_000, "must be at most 100000"),
        ("train.batch_size", t.batch_size <= 1 << 20, "must be at most 1048576"),
        ("train.step_size", t.step_size <= 100_000, "must be at most 100000"),
        ("train.warmup_epochs", t.warmup_epochs <= 100_000, "must be at most 100000"),
        ("train.freeze_backbone_epochs", t.freeze_backbone_epochs <= 100_000, "must be at most 100000"),
        ("train.focal_gamma", _within(t.focal_gamma, 0.0, 100.0), "must be in [0, 100]"),
        ("train.lr_head_multiplier", _within(t.lr_head_multiplier, 0.0, 1e6, low_open=True), "must be > 0"),
        ("train.grad_clip", t.grad_clip is None or _within(t.grad_clip, 0.0, low_open=True),
         "must be null or a finite number > 0"),
        ("model.drop_rate", _within(config.model.drop_rate, 0.0, 1.0) and config.model.drop_rate < 1.0,
         "must be in [0, 1)"),
        ("early_stopping.patience", 0 <= es.patience <= 100_000, "must be in 0..100000"),
        ("early_stopping.min_delta", _within(es.min_delta, 0.0), "must be a finite number >= 0"),
        ("tracking.wandb.log_every", 1 <= config.tracking.wandb.log_every <= 1_000_000, "must be >= 1"),
    ]
    for key, ok, rule in checks:
        if not ok:
            raise UserError(f"config key '{key}' in {origin} {rule}")


def _is_range(values: list) -> bool:
    if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return False
    return 0.0 < values[0] <= values[1] <= 1.0


def _check_train_values(train: TrainConfig, origin: str) -> None:
    checks = [
        ("train.ema", train.ema is None or 0.0 < train.ema < 1.0, "must be null or a decay in (0, 1), e.g. 0.999"),
        ("train.grad_clip", train.grad_clip is None or train.grad_clip > 0, "must be null or > 0"),
        ("train.focal_gamma", train.focal_gamma >= 0, "must be >= 0"),
        ("train.label_smoothing", 0.0 <= train.label_smoothing < 1.0, "must be in [0, 1)"),
        ("train.step_size", train.step_size >= 1, "must be >= 1"),
        ("train.step_gamma", 0.0 < train.step_gamma <= 1.0, "must be in (0, 1]"),
        ("train.warmup_epochs", 0 <= train.warmup_epochs, "must be >= 0"),
        ("train.freeze_backbone_epochs", train.freeze_backbone_epochs >= 0, "must be >= 0"),
        ("train.lr_head_multiplier", train.lr_head_multiplier > 0, "must be > 0"),
        ("train.layer_decay", train.layer_decay is None or 0.0 < train.layer_decay <= 1.0,
         "must be null or in (0, 1], e.g. 0.75"),
        ("train.augment.crop_scale", _is_range(train.augment.crop_scale),
         "must be [low, high] with 0 < low <= high <= 1"),
        ("train.augment.hflip", 0.0 <= train.augment.hflip <= 1.0, "must be a probability in [0, 1]"),
        ("train.augment.color_jitter", 0.0 <= train.augment.color_jitter < 1.0, "must be in [0, 1)"),
        ("train.channels_last", isinstance(train.channels_last, bool) or train.channels_last == "auto",
         "must be auto, true or false"),
        ("train.amp", train.amp is False or train.amp in ("auto", "bf16", "fp16", "off"),
         "must be auto, bf16, fp16 or off"),
    ]
    for key, ok, rule in checks:
        if not ok:
            raise UserError(f"config key '{key}' in {origin} {rule}")


def _check_distill_values(distill: DistillConfig, origin: str) -> None:
    if not (distill.temperature > 0 and distill.temperature < float("inf")):
        raise UserError(f"config key 'distill.temperature' in {origin} must be a number > 0, e.g. 4")
    if not 0.0 <= distill.alpha <= 1.0:
        raise UserError(f"config key 'distill.alpha' in {origin} must be in [0, 1]")


def _check_pseudo_values(config: MemberConfig, origin: str) -> None:
    for key, name in (("data.pseudo", config.data.pseudo), ("distill.unlabeled", config.distill.unlabeled)):
        problem = name_problem(name) if name is not None else None  # it names pseudo/<name>/
        if problem:
            raise UserError(f"config key '{key}' in {origin} is {name!r}: it {problem}")
    weight = config.pseudo.weight
    if not (weight > 0 and weight < float("inf")):
        raise UserError(f"config key 'pseudo.weight' in {origin} must be a number > 0, e.g. 1")

