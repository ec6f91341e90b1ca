"""The distill job: a saved ensemble recipe → one student member trained on the ensemble's soft predictions.

The teacher is the recipe itself: its members' cached predictions on the training rows (a `train`
split predicted through predict_members, beside `val` and `test`) combined by `ensemble.recipe.apply`
with the recipe's rule, weights and temperatures, exactly as the vote combines them. The student then
trains through the normal path (jobs.train.train_member): run folder, checkpoints, early stopping,
wandb, resume, DDP, registration, with `distilled_from` in its registry entry.

Every check that can fail (the recipe, its members, the student's classes) runs before the run
folder is made, so a mistake leaves nothing behind.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score

from core.config import MemberConfig, load_config
from core.entry import RegistryEntry
from core.errors import UserError
from core.hashing import sha256_file
from core.registry import Registry
from core.settings import Settings
from ensemble.recipe import Recipe, apply, read_recipe
from imagedata.sources import DatasetListing
from jobs.fold_groups import fold_members, recipe_entries, unit_inputs, units_of_recipe
from jobs.train import TrainOutcome, train_member
from members.interrupts import TrainingStopped
from members.resume import resume_config
from members.teacher import TeacherTargets
from predict.loading import LoadedMember, load_member
from predict.resize import resize_batch
from predict.run import predict_members

log = logging.getLogger("members")
TEACHER_PARTS = ("train", "val")


@dataclass
class DistillRequest:
    recipe: str
    config: str | None = None
    overrides: list[str] | None = None
    registry: str | None = None
    resume: str | None = None
    stop_after_epoch: int | None = None
    tta: str = "none"          # the teacher members' prediction views; part of the cache key
    device: str = "auto"       # where the teacher members predict (the student follows train.device)
    batch_size: int = 256      # prediction batch size for the teacher


def check_student(config: MemberConfig, entries: list[RegistryEntry], settings: Settings, origin: str) -> None:
    """Same classes in the same order as the teacher."""
    dataset = DatasetListing().load(config.data, settings.data_root)
    teacher = list(entries[0].classes)
    student = [str(c) for c in dataset.classes]
    if student != teacher:
        how = ("the same classes in a different order" if sorted(student) == sorted(teacher)
               else f"{len(student)} classes ({', '.join(student[:5])}{', …' if len(student) > 5 else ''})")
        raise UserError(f"student config {origin} has {how} but the recipe's members predict {len(teacher)} classes "
                        f"({', '.join(teacher[:5])}{', …' if len(teacher) > 5 else ''}); a student must learn the "
                        f"teacher's classes in the teacher's order")


def oof_teacher_targets(recipe: Recipe, recipe_path: str, entries: list[RegistryEntry], registry: Registry,
                        settings: Settings, req: DistillRequest) -> TeacherTargets:
    """A recipe of fold groups: its vote on every training row, out of fold (honest targets).

    Each fold model predicts only the rows it was validated on (its cached `val` split); stitched per
    group exactly as the vote stitches them, then combined by `ensemble.recipe.apply`."""
    units = units_of_recipe(list(recipe.members), recipe.groups)
    by_name = {e.name: e for e in entries}
    predictions = predict_members(fold_members(units), registry, settings, parts=("val",), tta=req.tta,
                                  device=req.device, batch_size=req.batch_size, entries=by_name)
    inputs, _ = unit_inputs(units, by_name, predictions, settings, with_test=False)
    labels, probs = apply(recipe, inputs.by_name("val"))
    teacher_f1 = float(f1_score(inputs.val_labels, labels, average="macro", labels=range(len(inputs.classes)),
                                zero_division=0))
    log.info("teacher %s (rule %s, fold groups %s): out-of-fold macro F1 %.4f on %d training rows; every target is "
             "out of fold (predicted by the fold model that did not train on the row)", recipe_path, recipe.rule,
             ", ".join(recipe.members), teacher_f1, len(inputs.val_ids))
    probs = np.asarray(probs, dtype=np.float32)
    probs /= probs.sum(1, keepdims=True)
    provenance = {"recipe": _recorded_path(recipe_path, registry), "sha256": sha256_file(Path(recipe_path)),
                  "members": fold_members(units), "rule": recipe.rule, "targets": "out-of-fold",
                  "teacher_val_f1_macro": round(teacher_f1, 6)}
    return TeacherTargets(np.asarray(inputs.val_ids).astype(str), probs, np.zeros(len(inputs.val_ids), bool),
                          provenance)


def teacher_targets(recipe: Recipe, recipe_path: str, entries: list[RegistryEntry], registry: Registry,
                    settings: Settings, req: DistillRequest) -> TeacherTargets:
    """The recipe's probabilities on the members' training rows (in-sample) and validation rows;
    out of fold on every training row when the recipe's members are fold groups."""
    if recipe.groups:
        return oof_teacher_targets(recipe, recipe_path, entries, registry, settings, req)
    names = list(recipe.members)
    by_name = {e.name: e for e in entries}
    predictions = predict_members(names, registry, settings, parts=TEACHER_PARTS, tta=req.tta, force=False,
                                  device=req.device, batch_size=req.batch_size, entries=by_name)
    parts = {}
    for part in TEACHER_PARTS:
        ids = predictions[names[0]][part].ids
        for name in names[1:]:
            if not np.array_equal(predictions[name][part].ids, ids):
                raise UserError(f"members '{names[0]}' and '{name}' have different {part} rows in their predictions")
        # Exactly what the vote does with these members: recipe.apply on the cached probabilities.
        labels, probs = apply(recipe, {n: predictions[n][part].probs for n in names})
        parts[part] = (ids, labels, probs, predictions[names[0]][part].labels)
    val_ids, val_pred, _, val_truth = parts["val"]
    teacher_f1 = float(f1_score(val_truth, val_pred, average="macro", labels=range(len(entries[0].classes)),
                                zero_division=0))
    log.info("teacher %s (rule %s, members %s): validation macro F1 %.4f; its targets on the %d training rows are "
             "in-sample (predicted by members trained on them)", recipe_path, recipe.rule, ", ".join(names),
             teacher_f1, len(parts["train"][0]))
    ids = np.concatenate([parts["train"][0], val_ids]).astype(str)
    probs = np.concatenate([parts["train"][2], parts["val"][2]]).astype(np.float32)
    probs /= probs.sum(1, keepdims=True)  # hard-rule vote shares already sum to 1; keep exact for the KL
    in_sample = np.r_[np.ones(len(parts["train"][0]), bool), np.zeros(len(val_ids), bool)]
    provenance = {"recipe": _recorded_path(recipe_path, registry), "sha256": sha256_file(Path(recipe_path)),
                  "members": names, "rule": recipe.rule, "targets": "in-sample",
                  "teacher_val_f1_macro": round(teacher_f1, 6)}
    return TeacherTargets(ids, probs, in_sample, provenance)


class OnlineTeacher:
    """distill.online: the recipe's members run on every augmented training batch (K extra forward passes).

    Each member sees the batch at its own input size and normalisation, as in prediction; a fold
    group's probabilities are the mean of its fold models' (its test rule); the recipe then combines
    them exactly as the vote does. Slower than the cached targets, but the target belongs to the
    very crop the student sees."""

    def __init__(self, recipe: Recipe, registry: Registry, entries: list[RegistryEntry]):
        self.recipe = recipe
        self.units = units_of_recipe(list(recipe.members), recipe.groups)
        self.members = {e.name: load_member(registry, e) for e in entries}
        self.device: torch.device | None = None

    def _probs(self, member: LoadedMember, images: torch.Tensor) -> np.ndarray:
        x = resize_batch(images, member.size, member.entry.input.interpolation)
        logits = member.model(member.normalize(x)).float()
        return torch.softmax(logits, dim=1).cpu().numpy().astype(np.float64)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.device != images.device:  # moved once, to wherever the student trains
            for member in self.members.values():
                member.model.to(images.device).eval()
                member.normalize.to(images.device)
            self.device = images.device
        by_unit = {u.name: np.mean([self._probs(self.members[m], images) for m in u.members], axis=0)
                   for u in self.units}
        _, probs = apply(self.recipe, by_unit)
        probs = np.asarray(probs, dtype=np.float32)
        return torch.from_numpy(probs / probs.sum(1, keepdims=True))


def _recorded_path(path: str, registry: Registry) -> str:
    """Relative to the registry when inside its folder (portable, like every other path), else absolute."""
    try:
        return registry.relative(path)
    except UserError:
        return Path(path).resolve().as_posix()


def distill_command(req: DistillRequest, settings: Settings) -> TrainOutcome:
    recipe = read_recipe(req.recipe)
    if req.resume:
        resume_from, config = resume_config(req.resume, req.overrides or [])
        origin = str(resume_from / "config.yaml")
    else:
        if not req.config:
            raise UserError("give the student's member config with --config FILE (or --resume RUN_FOLDER)")
        resume_from, config, origin = None, load_config(req.config, req.overrides or []), req.config
    registry = Registry.chosen(req.registry, settings)
    entries = recipe_entries(recipe, req.recipe, registry)
    check_student(config, entries, settings, origin)
    if resume_from is None and registry.exists(config.name):
        raise UserError(f"member '{config.name}' is already in {registry.path}; pick another name=")
    teacher = teacher_targets(recipe, req.recipe, entries, registry, settings, req)
    if config.distill.online:
        teacher.online = OnlineTeacher(recipe, registry, entries)
        teacher.provenance["targets"] = "online"
        log.info("distill.online: the %d teacher model(s) run on every augmented batch (the cached targets only "
                 "score the teacher)", len(entries))
    try:
        run_dir, entry = train_member(config, settings, registry_path=req.registry and Path(req.registry),
                                      resume_from=resume_from, stop_after_epoch=req.stop_after_epoch,
                                      teacher=teacher)
    except TrainingStopped as stopped:
        if stopped.run_dir is None:
            return TrainOutcome(stopped.exit_code)
        return TrainOutcome(stopped.exit_code, f"{stopped.reason}: saved last checkpoint in {stopped.run_dir}; "
                            f"nothing registered. Continue with: python -m scripts.distill --recipe {req.recipe} "
                            f"--resume {stopped.run_dir}", to_stderr=True)
    if run_dir is None:
        return TrainOutcome(0)
    m = entry.metrics
    return TrainOutcome(0, f"registered student {entry.name}: val_f1_macro {m['val_f1_macro']:.4f} "
                           f"(teacher {teacher.provenance['teacher_val_f1_macro']:.4f}), val_acc {m['val_acc']:.4f} "
                           f"(best epoch {m['best_epoch']}), distilled from {req.recipe} → {run_dir}")
