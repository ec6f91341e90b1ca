"""Train one member end to end and register it; the function behind scripts/train.py."""
from __future__ import annotations

import logging
import random
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from core import distributed
from core.config import MemberConfig, load_config
from core.entry import RegistryEntry
from core.errors import UserError
from core.hashing import sha256_file
from core.images import RESIZE_INTERPOLATION
from core.registry import Registry
from core.settings import REPO_ROOT, Settings
from jobs.member_data import MemberData, prepare_data
from jobs.train_checks import check_new_member
from members.checkpoints import Checkpoints
from members.feeding import build_feeds
from members.interrupts import TrainingStopped, stop_on_signals
from members.resume import TrainingState, load_state, resume_config
from members.run_folder import create_run_folder, finish_run_folder
from members.run_record import DISTILLED_FROM, record_pseudo, write_config, write_results
from members.run_state import TrainResult
from members.targets import CachedTeacherTargets, OnlineTeacherTargets, PseudoTargets, Targets
from members.teacher import TeacherTargets
from members.tracking import Tracker
from members.trainer import Hooks, Network, RunContext, Trainer
from modeling.models import build_model, check_arch, count_parameters
from modeling.preprocess import Normalize
from modeling.pretrained import WeightsOrigin, plan_start

log = logging.getLogger("members")
SMOKE_BATCHES = 2
__all__ = ["TrainRequest", "TrainOutcome", "train_command", "train_member", "prepare_data", "TeacherTargets"]


@dataclass(frozen=True)
class _Job:
    """How train_member was asked to run one member (the config aside)."""
    registry: Registry
    smoke: bool = False
    resume_from: Path | None = None
    stop_after_epoch: int | None = None
    teacher: TeacherTargets | None = None


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _resume_state(resume_from: Path | None, config: MemberConfig) -> TrainingState | None:
    if resume_from is None:
        return None
    state = load_state(resume_from)
    if state.epochs_done >= config.train.epochs:
        # Stopped after its last epoch but before it registered (a SIGTERM during the final validation, a
        # killed plan driver): resuming finishes it, with no epoch trained, as an uninterrupted run would have.
        log.info("--resume %s: all %d epochs are done; registering it without training (pass train.epochs=N "
                 "with N > %d to train longer)", resume_from, state.epochs_done, state.epochs_done)
    return state


def _ema_entry(config: MemberConfig, registry: Registry, run_dir: Path, result) -> dict | None:
    path = run_dir / "best_ema.safetensors"
    if result.ema_best_epoch is None or not path.is_file():
        return None
    metrics = {k: round(float(result.ema_best[f"val_ema_{k[4:]}"]), 6)
               for k in ("val_f1_macro", "val_acc", "val_loss")}
    return {"weights": registry.relative(path), "sha256": sha256_file(path), "decay": config.train.ema,
            "metrics": metrics | {"best_epoch": result.ema_best_epoch}}


@contextmanager
def _run_log(run_dir: Path | None) -> Iterator[None]:
    """The run's own train.log in its folder while it trains (rank 0 only: the others have no folder)."""
    if run_dir is None:
        yield
        return
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def build_entry(config: MemberConfig, registry: Registry, run_dir: Path, data: MemberData, sha256: str,
                built, result, tracker: Tracker, distilled_from: dict | None = None) -> RegistryEntry:
    s = config.data.split
    extra = {"distilled_from": distilled_from} if distilled_from is not None else {}
    if data.dataset.corrections is not None:  # the labels it trained on: a vote refuses mixing corrections
        extra["corrections"] = data.dataset.corrections.to_entry()
    if data.pseudo is not None:
        extra["pseudo"] = data.pseudo.provenance
    if data.dataset.task is not None:  # a task member: its classes are one task's (imagedata/tasks.py)
        extra["task"] = data.dataset.task
    return RegistryEntry.new({
        "name": config.name, "arch": config.model.arch,
        "classes": list(data.dataset.classes),
        "weights": registry.relative(run_dir / "best.safetensors"),
        "sha256": sha256,
        "input": {"size": list(config.data.image_size), "mean": [float(v) for v in built.mean],
                  "std": [float(v) for v in built.std], "interpolation": RESIZE_INTERPOLATION},
        "split": {"name": s.name, "sha256": data.split.sha256, "fold": s.fold, "n_folds": s.n_folds,
                  "duplicates": data.split.duplicates, "merged_groups": data.split.merged_groups},
        "composite": data.dataset.composite,  # task layout for per-task votes; None for plain classes
        "metrics": {k: round(float(result.best[k]), 6) for k in ("val_f1_macro", "val_acc", "val_loss")}
                   | {"best_epoch": result.best_epoch},
        "config": registry.relative(run_dir / "config.yaml"),
        "run": registry.relative(run_dir),
        "val_probs": registry.relative(run_dir / "val_probs.npz"),
        "data": {"source": config.data.source, "root": config.data.root, "test": config.data.test},
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git": git_revision(),
        "tracking": {"wandb_run": tracker.run_id, "group": config.ensemble},
        "pretrained": built.origin,
        "weights_origin": built.weights.to_entry(),
        "ema": _ema_entry(config, registry, run_dir, result),
        **extra,
    })


def _smoke_predict(built, data: MemberData, config: MemberConfig, settings: Settings) -> int:
    """Exercise the prediction path on a few test images so smoke catches what predict would hit."""
    from predict.inference import predict_paths

    test = data.dataset.test
    if test is None or test.empty:
        return 0
    paths = test["path"].tolist()[: config.train.batch_size]
    probs = predict_paths(built.model, Normalize(built.mean, built.std), paths, tuple(config.data.image_size), torch.device("cpu"),
                          settings.image_cache / "smoke")
    return len(probs)


def train_member(config: MemberConfig, settings: Settings, smoke: bool = False,
                 registry_path: str | Path | None = None, resume_from: Path | None = None,
                 stop_after_epoch: int | None = None,
                 teacher: TeacherTargets | None = None) -> tuple[Path | None, RegistryEntry | None]:
    """Train, write the run folder and register; smoke runs a few batches and registers nothing.

    `teacher` trains a distillation student on its targets (scripts.distill) and records where they came from.

    `resume_from` continues an interrupted run folder; `stop_after_epoch` pauses after that
    epoch (raising TrainingStopped) so it can be resumed later. Under torchrun every rank
    runs this; only rank 0 writes the run folder and the registry, the others return (None, None).
    """
    check_arch(config.model.arch)
    job = _Job(Registry.chosen(registry_path, settings), smoke, resume_from, stop_after_epoch, teacher)
    # The starting weights are found (or fetched) before any data work: a missing file fails in seconds.
    start = plan_start(config.model, job.registry)
    ctx = distributed.setup(config.train.device)
    try:
        return _train_member(config, settings, job, ctx, start)
    finally:
        ctx.close()


def _log_start(config: MemberConfig, built, data: MemberData, ctx: distributed.DistContext) -> None:
    log.info("member %s: %s, %.2fM parameters, device %s", config.name, config.model.arch,
             count_parameters(built.model) / 1e6, ctx.describe())
    log.info("weights: %s", built.origin)
    log.info("split %s fold %d: %d train / %d val rows", config.data.split.name, config.data.split.fold,
             len(data.train_idx), len(data.val_idx))
    log.info("split %s duplicates %s: %d group(s) merged with their copies", config.data.split.name,
             data.split.duplicates, data.split.merged_groups)


def _register(config: MemberConfig, registry: Registry, run_dir: Path, data: MemberData, built, result,
              tracker: Tracker, teacher: TeacherTargets | None) -> tuple[Path, RegistryEntry]:
    """Name the run folder by its score and register it; a failed registration renames it back to incomplete."""
    pending = run_dir
    run_dir = finish_run_folder(run_dir, config.early_stopping.monitor, result.best[config.early_stopping.monitor])
    entry = build_entry(config, registry, run_dir, data, sha256_file(run_dir / "best.safetensors"), built, result,
                        tracker, teacher.provenance if teacher is not None else None)
    try:
        registry.add(entry)
    except BaseException:
        run_dir.rename(pending)  # an unregistered run must not look finished
        raise
    return run_dir, entry


def _targets(teacher: TeacherTargets | None, data: MemberData, config: MemberConfig) -> Targets:
    """Labels, the teacher's cached probabilities, the teacher run on each augmented batch (distill.online),
    or labelled rows beside pseudo-labelled test rows (data.pseudo / distill.unlabeled)."""
    weights = data.class_weights(config)
    if data.pseudo is not None:  # a distilled student with pseudo-labels is refused before this
        return PseudoTargets(data.pseudo.mode, weights)
    if teacher is None:
        return Targets(weights)
    return OnlineTeacherTargets(teacher.online, weights) if teacher.online is not None else CachedTeacherTargets(weights)


def _open_run_folder(config: MemberConfig, settings: Settings, job: _Job, ctx: distributed.DistContext) -> Path | None:
    if not ctx.is_main:
        return None
    return job.resume_from or create_run_folder(settings.runs / "_smoke" if job.smoke else settings.runs,
                                                config.name, config.model.arch)


def _fit(config: MemberConfig, job: _Job, ctx: distributed.DistContext, data: MemberData, built,
         soft: np.ndarray | None, run_dir: Path | None, tracker: Tracker, state: TrainingState | None) -> TrainResult:
    feeds = build_feeds(config, data.images, data.labels, data.train_idx, data.val_idx, ctx, teacher=soft,
                        targets=data.targets())
    with stop_on_signals() as stop:
        trainer = Trainer(config, Network(built.model, Normalize(built.mean, built.std), feeds.augment),
                          RunContext(ctx.device, ctx, SMOKE_BATCHES if job.smoke else None),
                          targets=_targets(job.teacher, data, config),
                          checkpoints=Checkpoints.of(config, run_dir, tracker.run_id),
                          hooks=Hooks(tracker.log_epoch, tracker.log_batch, stop))
        return trainer.fit(feeds.train, feeds.val, data.labels[data.val_idx], resume=state,
                           stop_after_epoch=job.stop_after_epoch)


def _finish(config: MemberConfig, settings: Settings, job: _Job, run_dir: Path, data: MemberData, built,
            result: TrainResult, tracker: Tracker) -> tuple[Path, RegistryEntry | None]:
    """Rank 0 after training: the run folder's results, then (unless smoke) the registry entry."""
    write_results(config, run_dir, data.val_ids, data.labels[data.val_idx], data.dataset.classes, result)
    if job.smoke:
        log.info("smoke: predicted %d test images; nothing registered", _smoke_predict(built, data, config, settings))
        return run_dir, None
    run_dir, entry = _register(config, job.registry, run_dir, data, built, result, tracker, job.teacher)
    tracker.finish({f"best/{k}": v for k, v in result.best.items()})
    log.info("registered %s in %s", config.name, job.registry.path)
    return run_dir, entry


def _train_member(config: MemberConfig, settings: Settings, job: _Job, ctx: distributed.DistContext,
                  start: WeightsOrigin) -> tuple[Path | None, RegistryEntry | None]:
    check_new_member(config, settings, job.registry, smoke=job.smoke, distilled=job.teacher is not None)
    if job.smoke:  # a copy: the caller's config is left as it was given
        config = replace(config, train=replace(config.train, epochs=1))
    seed_everything(config.train.seed + ctx.rank, config.train.deterministic)
    data = prepare_data(config, settings)
    soft = None if job.teacher is None else job.teacher.for_pool(data.dataset.train["id"].astype(str).tolist(),
                                                                 data.train_idx, list(data.dataset.classes))
    built = build_model(config.model.arch, data.dataset.num_classes, drop_rate=config.model.drop_rate,
                        start=start, keep_head=config.model.keep_head)
    state = _resume_state(job.resume_from, config)
    run_dir = _open_run_folder(config, settings, job, ctx)
    tracker = None
    with _run_log(run_dir):
        try:
            _log_start(config, built, data, ctx)
            config_dict = write_config(config, run_dir, data.skipped,
                                       job.teacher.provenance if job.teacher is not None else None)
            if run_dir is not None and data.pseudo is not None:
                record_pseudo(run_dir, data.pseudo.provenance, resumed=state is not None)
            tracker = Tracker(config, run_dir, settings.wandb_entity, config_dict,
                              enabled=not job.smoke and ctx.is_main, resume_id=state.wandb_run if state else None)
            result = _fit(config, job, ctx, data, built, soft, run_dir, tracker, state)
            return _finish(config, settings, job, run_dir, data, built, result, tracker) if ctx.is_main else (None, None)
        except TrainingStopped as stopped:
            stopped.run_dir = run_dir
            if tracker is not None:
                tracker.finish(exit_code=stopped.exit_code)
            raise
        except BaseException:
            if tracker is not None:
                tracker.finish(exit_code=1)
            raise


@dataclass(frozen=True)
class TrainRequest:
    """What scripts.train asks for: a new run from `config_file`, or `resume` an interrupted run folder."""
    config_file: str | None = None
    overrides: list[str] = field(default_factory=list)
    smoke: bool = False
    registry_path: str | None = None
    resume: str | None = None
    stop_after_epoch: int | None = None
    config: MemberConfig | None = None  # `config_file` with `overrides`, when the caller has read it already


@dataclass
class TrainOutcome:
    """What the train command tells the user: its exit code and one line (stderr for a stop)."""
    code: int
    message: str | None = None
    to_stderr: bool = False
    member: str | None = None  # the member registered, if any


def _requested_config(req: TrainRequest) -> tuple[Path | None, MemberConfig]:
    """The run folder to continue (or None) and the config to train with."""
    if not req.resume:
        return None, req.config or load_config(req.config_file, req.overrides)
    resume_from, config = resume_config(req.resume, req.overrides)
    if (resume_from / DISTILLED_FROM).is_file():
        raise UserError(f"--resume {resume_from}: this run is a distilled student and needs its teacher's targets; "
                        f"continue it with python -m scripts.distill --recipe RECIPE --resume {resume_from}")
    return resume_from, config


def train_command(req: TrainRequest, settings: Settings) -> TrainOutcome:
    """The train job: a new run from a config file, or `resume` an interrupted run folder."""
    resume_from, config = _requested_config(req)
    try:
        run_dir, entry = train_member(config, settings, smoke=req.smoke, registry_path=req.registry_path,
                                      resume_from=resume_from, stop_after_epoch=req.stop_after_epoch)
    except TrainingStopped as stopped:
        if stopped.run_dir is None:  # a non-zero rank: rank 0 speaks for the run
            return TrainOutcome(stopped.exit_code)
        return TrainOutcome(stopped.exit_code, f"{stopped.reason}: saved last checkpoint in {stopped.run_dir}; "
                            f"nothing registered. Continue with: python -m scripts.train --resume {stopped.run_dir}",
                            to_stderr=True)
    if run_dir is None:
        return TrainOutcome(0)  # a non-zero torchrun rank: rank 0 reports
    if entry is None:
        return TrainOutcome(0, f"smoke run OK: {run_dir} (nothing registered)")
    m = entry.metrics
    return TrainOutcome(0, f"registered {entry.name}: val_f1_macro {m['val_f1_macro']:.4f}, "
                           f"val_acc {m['val_acc']:.4f} (best epoch {m['best_epoch']}) → {run_dir}", member=entry.name)
