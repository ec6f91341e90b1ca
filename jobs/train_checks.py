"""What a training run can refuse before the training stack loads.

`scripts.train` runs these right after reading the config, so a taken name, a data folder that cannot be
listed (a missing image named in info.csv, a CSV without its header, a label out of range) and a pseudo-label
set that is missing, labels other classes or breaks the fold rule on an existing split are one line in about
two seconds instead of after torch and timm have loaded (about 10 s on a 2-core box). No deep-learning stack
is imported here (core, imagedata and the pseudo-label set's reader). The slow data work, the bad-image
pre-scan and the split, still comes after the starting weights are found, so a missing weights file keeps
failing before minutes of scanning; and a member that starts from weights (hub, file or another member) has
them found before its data is even listed.
"""
from __future__ import annotations

from core.config import MemberConfig
from core.errors import UserError
from core.registry import Registry
from core.settings import Settings
from imagedata.sources import load_dataset
from jobs.pseudo_set import check_student_early


def check_new_member(config: MemberConfig, settings: Settings, registry: Registry, *, smoke: bool,
                     distilled: bool) -> None:
    """What can be refused before any data is read (train_member runs it too, for callers other than the CLI)."""
    if not smoke and registry.exists(config.name):
        raise UserError(f"member '{config.name}' is already in {registry.path}; pick another name=")
    if not smoke:
        registry.relative(settings.runs)  # a registry that cannot point at the run folder fails now, not after training
    if distilled and (config.data.pseudo or config.distill.unlabeled):
        raise UserError("a distilled student cannot also train on pseudo-labels (data.pseudo / distill.unlabeled) yet; "
                        "train it with python -m scripts.train instead")


def check_before_training(config: MemberConfig, settings: Settings, registry_path: str | None, *,
                          smoke: bool) -> None:
    """The new member's name and registry, then, for a member trained from scratch, its data listing (no image is
    opened) and the pseudo-label set it asks for. A member with starting weights has them looked up first, in
    train_member, which needs timm; its data is listed there, after them. The job lists the data again (a folder
    walk and a CSV read, without opening an image) rather than carry the listing across."""
    check_new_member(config, settings, Registry.chosen(registry_path, settings), smoke=smoke, distilled=False)
    if not config.model.starts_asked():
        check_student_early(config, settings, load_dataset(config.data, settings.data_root, settings.output_root))
