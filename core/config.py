"""Typed member configuration: YAML plus `key=value` overrides, validated by pydantic against the dataclasses below.

Unknown keys are refused with a suggestion, bad values name the key, the value and what is expected,
and every message says where the value came from (the file, or the command-line overrides)."""
from __future__ import annotations

import dataclasses
import difflib
import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError

from core import files
from core.errors import UserError
from core.extensions import POINTS
from core.limits import image_size_problem
from core.names import member_name_problem, name_problem, shown


@dataclass
class SplitConfig:
    name: str = "holdout-s42"
    n_folds: int = 5          # holdout = fold 0 of a stratified group k-fold (val ≈ 1/n_folds)
    fold: int = 0             # which fold this member validates on
    seed: int = 42


@dataclass
class DataConfig:
    source: str = "digits"    # a name in core.extensions.DATA_SOURCES (registered in imagedata/sources.py)
    root: str = "digits"      # relative to the machine's data root, or absolute
    test: str | None = None   # info.csv-style file or image folder; sources may supply a default
    image_size: list[int] = field(default_factory=lambda: [32, 32])
    on_bad_image: str = "error"  # error | skip
    composite: dict | None = None
    task: str | None = None   # one task of the composite label (mask data: mask | gender | age): train on its labels only
    split: SplitConfig = field(default_factory=SplitConfig)
    duplicates: str | bool = "near"  # exact | near | off: copies of a picture join one group before the split
    near_duplicate_distance: int = 8  # max differing bits of the 64-bit perceptual hash (0..16; see imagedata/duplicates.py)
    corrections: str | None = None  # id,action,label file from an audit (imagedata/corrections.py); relative: output root
    pseudo: str | None = None  # a pseudo-label set (scripts.pseudo): its passing test images join the training rows

    def __post_init__(self) -> None:
        # YAML reads a bare `off` (in a file or in data.duplicates=off) as false; it means the setting off.
        if self.duplicates is False:
            self.duplicates = "off"


@dataclass
class ModelConfig:
    arch: str = "resnet18"    # a timm name, or torchvision:<name>
    pretrained_file: str | None = None  # any local checkpoint (.safetensors, .pth state dict, {"model": ...})
    drop_rate: float = 0.0
    pretrained: bool = False  # timm's ImageNet weights through the Hugging Face hub cache (HF_HOME, HF_HUB_OFFLINE)
    keep_head: bool = False   # keep the start's classifier when it already has our class count (else a fresh Xavier head)
    init_from: str | None = None  # a registered member whose best weights are the start


@dataclass
class AugmentConfig:
    hflip: float = 0.0        # digits are not mirror-symmetric, so flips are opt-in
    crop_scale: list[float] = field(default_factory=lambda: [0.85, 1.0])
    color_jitter: float = 0.0
    mode: str = "auto"        # auto | batched | per_sample: batched runs on the training device; auto = batched on GPU


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adamw"  # a name in OPTIMIZERS (members/optim.py)
    lr: float = 1e-3
    weight_decay: float = 0.05
    momentum: float = 0.9
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    seed: int = 0
    device: str = "auto"      # auto | cpu | cuda | cuda:N
    num_workers: int = 0
    deterministic: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: str = "ce"          # a name in LOSSES (members/losses.py)
    focal_gamma: float = 2.0
    class_balance: str = "none"  # none | weights (loss weights) | sampler (class-balanced draws)
    ema: float | None = None  # EMA decay such as 0.999; saved as best_ema/last_ema.safetensors
    grad_clip: float | None = None  # max global gradient norm
    scheduler: str = "cosine"  # a name in SCHEDULERS (members/optim.py), each after warmup_epochs
    step_size: int = 30       # scheduler=step: epochs between decays
    step_gamma: float = 0.1   # scheduler=step: factor per decay
    compile: bool = False     # torch.compile the training model
    feed: str = "auto"        # auto | resident (uint8 pool as one tensor on the device, GPU or CPU) | stream (GPU side-stream prefetch)
    amp: str | bool = "auto"  # auto | bf16 | fp16 | off (YAML reads a bare off as false: same); auto = bf16 (fp16 on older GPUs) on a GPU, off on CPU
    channels_last: bool | str = "auto"  # auto | true | false; auto = on a GPU only (on CPU oneDNN trains slower in it)
    freeze_backbone_epochs: int = 0  # train only the head for the first N epochs, then everything
    lr_head_multiplier: float = 1.0  # the head's learning rate is train.lr x this
    layer_decay: float | None = None  # layer-wise lr decay (timm param_groups_layer_decay), e.g. 0.75


@dataclass
class EarlyStoppingConfig:
    monitor: str = "val_f1_macro"
    mode: str = "max"         # max | min
    patience: int = 5
    min_delta: float = 0.0


@dataclass
class WandbConfig:
    mode: str = "disabled"    # online | offline | disabled
    project: str = "ensemble-vote"
    entity: str | None = None
    log_every: int = 20       # batches between per-batch train-loss points


@dataclass
class TrackingConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass
class DistillConfig:
    """Used only by scripts.distill: the student's loss is alpha * KL(teacher_T || student_T) * T^2 + (1 - alpha) * CE."""
    temperature: float = 4.0  # T: both distributions are softened by it (Hinton et al. 2015)
    alpha: float = 0.9        # share of the distillation term; 0 = plain cross-entropy on the labels
    online: bool = False      # run the teacher members on each augmented batch instead of using cached targets
    unlabeled: str | None = None  # a pseudo-label set whose test images train on the teacher's soft targets


@dataclass
class PseudoConfig:
    """Pseudo-labelled test rows (data.pseudo or distill.unlabeled): their share of the loss."""
    weight: float = 1.0       # each pseudo row counts this much against a labelled row's 1


@dataclass
class MemberConfig:
    name: str = "member"
    ensemble: str = "default"   # the wandb group and the ensemble this member belongs to
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)


CHOICES = {
    "data.on_bad_image": {"error", "skip"},
    "data.duplicates": {"exact", "near", "off"},
    "train.class_balance": {"none", "weights", "sampler"},
    "train.feed": {"auto", "resident", "stream"},
    "train.augment.mode": {"auto", "batched", "per_sample"},
    "early_stopping.mode": {"max", "min"},
    "tracking.wandb.mode": {"online", "offline", "disabled"},
}


def _unknown_key(key: str, known: list[str], origin: str) -> UserError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"
    return UserError(f"unknown config key '{key}' in {origin}{hint}")


def _schemas() -> list[type]:
    """Every config dataclass of this module (sections added later are picked up too)."""
    return [v for v in globals().values() if isinstance(v, type) and dataclasses.is_dataclass(v)
            and v.__module__ == __name__]


@functools.lru_cache(maxsize=1)
def _adapter() -> TypeAdapter:
    # pydantic validates the dataclasses as they are: unknown keys refused, numbers accepted where a
    # string is expected (a member may be called 7), nothing guessed from the text of type hints.
    for schema in _schemas():
        schema.__pydantic_config__ = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    return TypeAdapter(MemberConfig)


def _section(loc: tuple) -> type:
    """The dataclass a location (a tuple of keys) points into."""
    cls = MemberConfig
    for key in loc:
        hint = get_type_hints(cls).get(key)
        if not (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
            break
        cls = hint
    return cls


def _fill_sections(cls: type, data: Any, prefix: str, origin: str) -> Any:
    """An empty section (`train:` with nothing under it) means its defaults; a non-mapping is refused."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config section '{prefix.rstrip('.') or 'top level'}' in {origin} must be a mapping")
    hints = get_type_hints(cls)
    out = dict(data)
    for key, value in data.items():
        hint = hints.get(key)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            out[key] = _fill_sections(hint, value, f"{prefix}{key}.", origin)
    return out


def _explain(err: ValidationError, origin: str) -> UserError:
    """pydantic's first error as our one line: the key, what was given, what is expected."""
    error = err.errors()[0]
    keys = [str(k) for k in error["loc"] if not isinstance(k, int)]
    key = ".".join(keys) or "top level"
    if error["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        section = _section(tuple(keys[:-1]))
        return _unknown_key(key, [f.name for f in dataclasses.fields(section)], origin)
    if error["type"] == "dataclass_type":
        return UserError(f"config section '{key}' in {origin} must be a mapping")
    given = error.get("input")
    if given is None:
        return UserError(f"config key '{key}' in {origin} may not be empty")
    hint = get_type_hints(_section(tuple(keys[:-1]))).get(keys[-1])
    expected = str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "") if hint else error["msg"]
    return UserError(f"config key '{key}' in {origin} has value {given!r}, expected {expected}")


def _check_choices(config: Any, prefix: str, origin: str) -> None:
    for f in dataclasses.fields(config):
        value, full = getattr(config, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            _check_choices(value, f"{full}.", origin)
        elif full in POINTS:  # data sources, losses, optimizers, schedules: named where they are implemented
            problem = POINTS[full].problem(value, origin)
            if problem:
                raise UserError(problem)
        elif full in CHOICES and value not in CHOICES[full]:
            raise UserError(
                f"config key '{full}' in {origin} is {value!r}; choose one of {', '.join(sorted(CHOICES[full]))}")


def _build(cls: type, data: dict, prefix: str, origin: str) -> Any:
    data = _fill_sections(cls, data, prefix, origin)
    try:
        config = _adapter().validate_python(data)
    except ValidationError as err:
        raise _explain(err, origin) from None
    _check_choices(config, "", origin)
    return config


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise UserError(f"override '{dotted}': '{key}' is not a section")
    node[keys[-1]] = value


def parse_overrides(items: list[str]) -> dict:
    """Turn `train.epochs=3 model.arch=resnet18` into a nested dict, values parsed as YAML."""
    tree: dict = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"override '{item}' must look like key=value (for example train.epochs=3)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        _set_dotted(tree, key.strip(), value)
    return tree


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


CONFIG_MAX_BYTES = files.MiB  # a member config is a page of YAML


def read_yaml(path: Path) -> dict:
    data = files.read_yaml(path, "config file", CONFIG_MAX_BYTES) or {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping")
    return data


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> MemberConfig:
    """Merge the YAML file with the command-line overrides and validate every key."""
    raw = read_yaml(Path(path)) if path else {}
    origin = str(path) if path else "defaults"
    if overrides:
        extra = parse_overrides(overrides)
        # Validate the overrides on their own first so a typo is blamed on the command line, not the file.
        _build(MemberConfig, extra, "", "the command-line overrides")
        raw = _merge(raw, extra)
    config = _build(MemberConfig, raw, "", origin)
    _check_values(config, origin)
    return config


def _check_values(config: MemberConfig, origin: str) -> None:
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
    if not 0 <= config.data.near_duplicate_distance <= 16:
        raise UserError(f"config key 'data.near_duplicate_distance' in {origin} must lie in 0..16 (bits of a 64-bit hash)")
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


def to_dict(config: MemberConfig) -> dict:
    return dataclasses.asdict(config)
