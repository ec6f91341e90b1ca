"""The member config's sections as dataclasses: every key, its default and what it means.

core.config reads YAML and overrides into these and validates them (pydantic, then
core.config_values for the ranges); CHOICES lists the keys whose value is one of a fixed set.
"""
from __future__ import annotations

from dataclasses import dataclass, field


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

    def starts_asked(self) -> list[str]:
        """The keys that ask for starting weights (none: from scratch); modeling.pretrained resolves them."""
        return [key for key, on in (("model.pretrained", self.pretrained),
                                    ("model.pretrained_file", self.pretrained_file),
                                    ("model.init_from", self.init_from)) if on]


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
