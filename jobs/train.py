"""Train one member end to end and register it; the function behind scripts/train.py."""
from __future__ import annotations

import logging
import random
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core import atomic, distributed, files
from core.config import MemberConfig, load_config, to_dict
from core.entry import RegistryEntry
from core.errors import UserError
from core.hashing import sha256_file
from core.images import RESIZE_INTERPOLATION
from core.registry import Registry
from core.settings import REPO_ROOT, Settings
from imagedata.corrections import NONE
from imagedata.image_cache import cache_bytes, decoded_images
from imagedata.prescan import apply_policy
from imagedata.sources import Dataset, load_dataset
from imagedata.splits import Split, ensure_split
from imagedata.tasks import split_table
from jobs.pseudo_set import PseudoRows, screen, student_rows
from members import artifacts
from members.feeding import build_feeds
from members.interrupts import TrainingStopped, stop_on_signals
from members.losses import balanced_class_weights
from members.pseudo_loss import pack_pseudo_targets
from members.resume import TrainingState, load_state, resume_config
from members.run_folder import create_run_folder, finish_run_folder
from members.targets import CachedTeacherTargets, OnlineTeacherTargets, PseudoTargets, Targets
from members.tracking import Tracker
from members.trainer import Trainer
from modeling.models import build_model, check_arch, count_parameters
from modeling.preprocess import Normalize
from modeling.pretrained import WeightsOrigin, plan_start

log = logging.getLogger("members")
SMOKE_BATCHES = 2
DISTILLED_FROM = "distilled_from.yaml"  # in a student's run folder: its registry entry's `distilled_from`
PSEUDO = "pseudo.yaml"  # in a pseudo-labelled run's folder: its registry entry's `pseudo` (checked on resume)


@dataclass
class MemberData:
    dataset: Dataset
    split: Split
    images: np.ndarray      # decoded pool, every train and val row
    train_idx: np.ndarray
    val_idx: np.ndarray
    val_ids: list[str]
    labels: np.ndarray
    skipped: pd.DataFrame | None = None  # id, path, reason of images dropped by data.on_bad_image=skip
    pseudo: PseudoRows | None = None     # pseudo-labelled test rows, appended to the pool and to train_idx only

    def targets(self) -> np.ndarray | None:
        """Packed targets when pseudo rows train (label, pseudo flag, teacher probabilities), else None."""
        if self.pseudo is None:
            return None
        n_real, n_classes = len(self.labels) - len(self.pseudo.ids), len(self.dataset.classes)
        teacher = np.zeros((len(self.labels), n_classes), np.float32)
        teacher[n_real:] = self.pseudo.probs
        return pack_pseudo_targets(self.labels, np.arange(len(self.labels)) >= n_real, teacher)


@dataclass
class TeacherTargets:
    """A distillation teacher's probabilities by row id, from the prediction cache (see jobs/distill.py)."""
    ids: np.ndarray         # [N] str
    probs: np.ndarray       # [N, C] float32, what the recipe's vote gives on each row
    in_sample: np.ndarray   # [N] bool: the teacher's members were trained on the row
    provenance: dict        # the registry entry's `distilled_from`
    online: Callable[[torch.Tensor], torch.Tensor] | None = None  # distill.online: the teacher on each augmented batch

    def for_pool(self, pool_ids: list[str], train_idx: np.ndarray, classes: list[str]) -> np.ndarray:
        """float32 [pool rows, C]: the teacher's targets on every training row (others stay uniform, unused)."""
        if self.probs.shape[1] != len(classes):
            raise UserError(f"the teacher predicts {self.probs.shape[1]} classes but the student's data has "
                            f"{len(classes)}")
        position = pd.Series(np.arange(len(self.ids)), index=[str(i) for i in self.ids])
        wanted = [pool_ids[i] for i in train_idx]
        found = position.reindex(wanted)
        if found.isna().any():
            missing = wanted[int(np.flatnonzero(found.isna().to_numpy())[0])]
            raise UserError(f"student training row '{missing}' has no teacher prediction (the recipe's members "
                            f"predicted {len(self.ids)} other rows): train the student on the members' data and split")
        rows = found.to_numpy().astype(np.int64)
        out = np.full((len(pool_ids), len(classes)), 1.0 / len(classes), np.float32)
        out[train_idx] = self.probs[rows]
        inside = int(self.in_sample[rows].sum())
        log.info("teacher targets for %d training rows: %d in-sample (the teacher's members trained on them, so they "
                 "are more confident than on unseen rows), %d out-of-sample", len(rows), inside, len(rows) - inside)
        return out


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


def prepare_data(config: MemberConfig, settings: Settings) -> MemberData:
    dataset = load_dataset(config.data, settings.data_root, settings.output_root)
    # Every bad file is found before any work starts; skipped rows leave before the split is made or checked.
    # The duplicate hashes are taken in the scan's own visit of each file, and cached for the split.
    dataset.train, skipped = apply_policy(dataset.train, config.data.on_bad_image, settings.image_cache,
                                          f"the {dataset.name} data at {dataset.root}",
                                          with_hashes=config.data.duplicates != "off")
    s = config.data.split
    split = ensure_split(split_table(dataset.train), s.name, s.n_folds, s.seed, settings.splits,
                         config.data.duplicates, config.data.near_duplicate_distance, settings.image_cache,
                         dataset.corrections.setting() if dataset.corrections else NONE)
    pool = dataset.train.reset_index(drop=True)
    position = pd.Series(np.arange(len(pool)), index=pool["id"])
    train_idx = position[split.rows(s.fold, "train")["id"]].to_numpy()
    val_ids = split.rows(s.fold, "val")["id"].tolist()
    val_idx = position[val_ids].to_numpy()
    labels, paths = pool["label"].to_numpy(), pool["path"].tolist()
    pseudo = student_rows(config, settings, dataset, split.sha256)
    if pseudo is not None:  # appended after the pool: training rows only, never validation or the split file
        pseudo = screen(pseudo, config, settings, pool, val_ids)
        train_idx = np.r_[train_idx, len(pool) + np.arange(len(pseudo.ids))]
        labels, paths = np.r_[labels, pseudo.labels], paths + pseudo.paths
        log.info("pseudo-labels: %d test image(s) of set '%s' join the %d training rows (%s targets, weight %g, "
                 "fold %d's teacher)", len(pseudo.ids), pseudo.provenance["name"], len(train_idx) - len(pseudo.ids),
                 pseudo.mode, config.pseudo.weight, s.fold)
    images = decoded_images(paths, tuple(config.data.image_size), settings.image_cache,
                            desc=f"decode {dataset.name}")
    log.info("image cache: %d images at %dx%d, %.1f MiB on disk (memmap)", len(paths), *config.data.image_size,
             cache_bytes(images) / 2**20)
    return MemberData(dataset, split, images, train_idx, val_idx, val_ids, labels, skipped, pseudo)


def _class_weights(config: MemberConfig, data: MemberData) -> np.ndarray | None:
    if config.train.class_balance != "weights":
        return None
    return balanced_class_weights(data.labels[data.train_idx], data.dataset.num_classes, data.dataset.classes)


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


def _attach_log(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


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
        "name": config.name,
        "arch": config.model.arch,
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


def _write_run_artifacts(config: MemberConfig, run_dir: Path, data: MemberData, result) -> None:
    best = result.best_outputs
    val_labels = data.labels[data.val_idx][: len(best.probs)]
    artifacts.save_probs(run_dir / "val_probs.npz", data.val_ids[: len(best.probs)], val_labels, best.probs, best.logits)
    artifacts.plot_curves(result.history, run_dir / "curves.png", f"{config.name} ({config.model.arch})")
    artifacts.plot_confusion(val_labels, best.probs.argmax(1), data.dataset.classes, run_dir / "confusion.png",
                             f"{config.name}: validation, best epoch {result.best_epoch}")
    atomic.write_text(run_dir / "history.csv", pd.DataFrame(result.history).to_csv(index=False))


def _record_pseudo(run_dir: Path, provenance: dict, resumed: bool) -> None:
    """The run's pseudo-label set, recorded; a resumed run must find exactly the set it started with."""
    path = run_dir / PSEUDO
    if resumed and path.is_file():
        before = files.read_yaml(path, "pseudo-label record") or {}
        if before.get("sha256") != provenance["sha256"] or before.get("rows") != provenance["rows"]:
            raise UserError(f"--resume {run_dir}: pseudo-label set '{provenance['name']}' changed since this run "
                            f"started (sha256 {str(before.get('sha256'))[:12]}… vs {provenance['sha256'][:12]}…); "
                            f"start a new run")
    atomic.write_text(path, files.dump_yaml(provenance, sort_keys=False))


def _smoke_predict(built, normalize, data: MemberData, config: MemberConfig, settings: Settings) -> int:
    """Exercise the prediction path on a few test images so smoke catches what predict would hit."""
    from predict.inference import predict_paths

    test = data.dataset.test
    if test is None or test.empty:
        return 0
    paths = test["path"].tolist()[: config.train.batch_size]
    probs = predict_paths(built.model, normalize, paths, tuple(config.data.image_size), torch.device("cpu"),
                          settings.image_cache / "smoke")
    return len(probs)


def train_member(config: MemberConfig, settings: Settings, smoke: bool = False,
                 registry_path: Path | None = None, resume_from: Path | None = None,
                 stop_after_epoch: int | None = None,
                 teacher: TeacherTargets | None = None) -> tuple[Path | None, RegistryEntry | None]:
    """Train, write the run folder and register; smoke runs a few batches and registers nothing.

    `teacher` trains a distillation student on its targets (scripts.distill) and records where they came from.

    `resume_from` continues an interrupted run folder; `stop_after_epoch` pauses after that
    epoch (raising TrainingStopped) so it can be resumed later. Under torchrun every rank
    runs this; only rank 0 writes the run folder and the registry, the others return (None, None).
    """
    check_arch(config.model.arch)
    # The starting weights are found (or fetched) before any data work: a missing file fails in seconds.
    start = plan_start(config.model, Registry.chosen(registry_path, settings))
    ctx = distributed.setup(config.train.device)
    try:
        return _train_member(config, settings, smoke, registry_path, resume_from, stop_after_epoch, ctx, start,
                             teacher)
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


def _write_config(config: MemberConfig, run_dir: Path | None, data: MemberData, teacher: TeacherTargets | None) -> dict:
    """The merged config (and a student's provenance) in the run folder, before training starts."""
    config_dict = to_dict(config)
    if run_dir is not None:
        if config.data.on_bad_image == "skip":
            atomic.write_text(run_dir / "skipped_images.csv", data.skipped.to_csv(index=False))
        atomic.write_text(run_dir / "config.yaml", files.dump_yaml(config_dict, sort_keys=False))
        if teacher is not None:  # marks the run as a student: the report and --resume read it
            atomic.write_text(run_dir / DISTILLED_FROM, files.dump_yaml(teacher.provenance, sort_keys=False))
    return config_dict


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


def _targets(teacher: TeacherTargets | None, data: MemberData) -> Targets:
    """Labels, the teacher's cached probabilities, the teacher run on each augmented batch (distill.online),
    or labelled rows beside pseudo-labelled test rows (data.pseudo / distill.unlabeled)."""
    if data.pseudo is not None:  # a distilled student with pseudo-labels is refused before this
        return PseudoTargets(data.pseudo.mode)
    if teacher is None:
        return Targets()
    return OnlineTeacherTargets(teacher.online) if teacher.online is not None else CachedTeacherTargets()


def _train_member(config: MemberConfig, settings: Settings, smoke: bool, registry_path: Path | None,
                  resume_from: Path | None, stop_after_epoch: int | None,
                  ctx: distributed.DistContext, start: WeightsOrigin,
                  teacher: TeacherTargets | None = None) -> tuple[Path | None, RegistryEntry | None]:
    registry = Registry.chosen(registry_path, settings)
    if not smoke and registry.exists(config.name):
        raise UserError(f"member '{config.name}' is already in {registry.path}; pick another name=")
    if not smoke:
        registry.relative(settings.runs)  # a registry that cannot point at the run folder fails now, not after training
    if smoke:  # a copy: the caller's config is left as it was given
        config = replace(config, train=replace(config.train, epochs=1))
    seed_everything(config.train.seed + ctx.rank, config.train.deterministic)
    if teacher is not None and (config.data.pseudo or config.distill.unlabeled):
        raise UserError("a distilled student cannot also train on pseudo-labels (data.pseudo / distill.unlabeled) yet; "
                        "train it with python -m scripts.train instead")
    data = prepare_data(config, settings)
    soft = None if teacher is None else teacher.for_pool(data.dataset.train["id"].astype(str).tolist(),
                                                         data.train_idx, list(data.dataset.classes))
    built = build_model(config.model.arch, data.dataset.num_classes, drop_rate=config.model.drop_rate,
                        start=start, keep_head=config.model.keep_head)
    state = _resume_state(resume_from, config)
    run_dir = handler = tracker = None
    if ctx.is_main:
        run_dir = resume_from or create_run_folder(settings.runs / "_smoke" if smoke else settings.runs,
                                                   config.name, config.model.arch)
        handler = _attach_log(run_dir)
    try:
        _log_start(config, built, data, ctx)
        config_dict = _write_config(config, run_dir, data, teacher)
        if run_dir is not None and data.pseudo is not None:
            _record_pseudo(run_dir, data.pseudo.provenance, resumed=state is not None)
        tracker = Tracker(config, run_dir, settings.wandb_entity, config_dict, enabled=not smoke and ctx.is_main,
                          resume_id=state.wandb_run if state else None)
        normalize = Normalize(built.mean, built.std)
        feeds = build_feeds(config, data.images, data.labels, data.train_idx, data.val_idx, ctx, teacher=soft,
                            targets=data.targets())
        with stop_on_signals() as stop:
            trainer = Trainer(config, built.model, normalize, run_dir, ctx.device,
                              max_batches=SMOKE_BATCHES if smoke else None, on_epoch=tracker.log_epoch,
                              on_batch=tracker.log_batch, dist=ctx, stop=stop,
                              class_weights=_class_weights(config, data), batch_augment=feeds.augment,
                              wandb_run=tracker.run_id, targets=_targets(teacher, data))
            result = trainer.fit(feeds.train, feeds.val, data.labels[data.val_idx], resume=state,
                                 stop_after_epoch=stop_after_epoch)
        if not ctx.is_main:
            return None, None
        _write_run_artifacts(config, run_dir, data, result)
        if smoke:
            log.info("smoke: predicted %d test images; nothing registered",
                     _smoke_predict(built, normalize.cpu(), data, config, settings))
            return run_dir, None
        run_dir, entry = _register(config, registry, run_dir, data, built, result, tracker, teacher)
        tracker.finish({f"best/{k}": v for k, v in result.best.items()})
        log.info("registered %s in %s", config.name, registry.path)
        return run_dir, entry
    except TrainingStopped as stopped:
        stopped.run_dir = run_dir
        if tracker is not None:
            tracker.finish(exit_code=stopped.exit_code)
        raise
    except BaseException:
        if tracker is not None:
            tracker.finish(exit_code=1)
        raise
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()


@dataclass
class TrainOutcome:
    """What the train command tells the user: its exit code and one line (stderr for a stop)."""
    code: int
    message: str | None = None
    to_stderr: bool = False


def train_command(config_file: str | None, overrides: list[str], settings: Settings, smoke: bool = False,
                  registry_path: str | None = None, resume: str | None = None,
                  stop_after_epoch: int | None = None) -> TrainOutcome:
    """The train job: a new run from a config file, or `resume` an interrupted run folder."""
    resume_from = None
    if resume:
        resume_from, config = resume_config(resume, overrides)
        if (resume_from / DISTILLED_FROM).is_file():
            raise UserError(f"--resume {resume_from}: this run is a distilled student and needs its teacher's targets; "
                            f"continue it with python -m scripts.distill --recipe RECIPE --resume {resume_from}")
    else:
        config = load_config(config_file, overrides)
    try:
        run_dir, entry = train_member(config, settings, smoke=smoke, registry_path=registry_path,
                                      resume_from=resume_from, stop_after_epoch=stop_after_epoch)
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
                           f"val_acc {m['val_acc']:.4f} (best epoch {m['best_epoch']}) → {run_dir}")
