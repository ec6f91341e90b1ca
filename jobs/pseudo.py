"""The pseudo job: a saved recipe's confident test predictions → pseudo/<name>/, fold-safe by construction.

For each fold k a student may train on, the teacher prediction is the recipe applied to the test
predictions of the models validated on fold k only (each unit's fold-k model for fold groups; the
members themselves for holdout members, which serve only their own fold). Everything comes from
the prediction cache (filled through the normal prediction path when a member lacks it); no
image is decoded here. The science is `ensemble.pseudo`; the files are `jobs.pseudo_set`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.entry import RegistryEntry
from core.errors import UserError
from core.hashing import sha256_file
from core.names import check_name
from core.registry import Registry
from core.settings import Settings
from ensemble import pseudo
from ensemble.recipe import Recipe, apply, read_recipe
from jobs.fold_groups import Unit, fold_members, recipe_entries, unit_inputs, units_of_recipe
from jobs.pseudo_set import PseudoSet, pseudo_dir, write_set
from predict.run import predict_members

log = logging.getLogger("members")


@dataclass
class PseudoRequest:
    recipe: str
    name: str
    threshold: float = 0.9
    per_class_cap: float | None = None
    registry: str | None = None
    overwrite: bool = False
    tta: str = "none"
    device: str = "auto"
    batch_size: int = 256


@dataclass
class PseudoResult:
    folder: Path
    counts: pd.DataFrame          # passing images per class and fold
    calibration: dict             # the teacher on held-out validation rows at the threshold
    test_rows: int
    folds: dict[int, dict[str, str]] = field(default_factory=dict)


def check_request(req: PseudoRequest, settings: Settings) -> Path:
    """Every refusal that needs no prediction: threshold, cap, name, an existing set."""
    for key, problem in (("--threshold", pseudo.threshold_problem(req.threshold)),
                         ("--per-class-cap", pseudo.cap_problem(req.per_class_cap))):
        if problem:
            raise UserError(f"{key} {problem}")
    check_name(req.name, "--name")
    folder = pseudo_dir(settings, req.name)
    if folder.exists() and not req.overwrite:
        raise UserError(f"pseudo-label set {folder} exists; pass --overwrite to replace it, or pick another --name")
    return folder


def _teachers(units: list[Unit], entries: dict[str, RegistryEntry], recipe_path: str) -> dict[int, dict[str, str]]:
    folds_of = {u.name: {m: entries[m].split.fold for m in u.members} for u in units}
    n_folds = {m: entries[m].split.n_folds for u in units for m in u.members}
    served = pseudo.fold_teachers(folds_of, n_folds)
    if not served:
        where = ", ".join(f"'{m}' fold {f}" for fs in folds_of.values() for m, f in fs.items())
        raise UserError(f"recipe {recipe_path}: no fold has a teacher that never trained on it ({where}); every "
                        f"unit must have a model validated on the student's fold")
    return served


def _fold_probs(recipe: Recipe, served: dict[int, dict[str, str]], predictions: dict, ids: np.ndarray
                ) -> dict[int, np.ndarray]:
    """Fold k's teacher: the recipe on the test predictions of fold k's models only."""
    out = {}
    for k, chosen in served.items():
        for member in chosen.values():
            if not np.array_equal(predictions[member]["test"].ids, ids):
                raise UserError(f"member '{member}' predicted other test rows than the recipe's first member; "
                                f"its members must share one test list")
        _, probs = apply(recipe, {unit: predictions[m]["test"].probs for unit, m in chosen.items()})
        probs = np.asarray(probs, dtype=np.float64)
        out[k] = probs / probs.sum(1, keepdims=True)
    return out


def pseudo_command(req: PseudoRequest, settings: Settings) -> PseudoResult:
    folder = check_request(req, settings)
    recipe = read_recipe(req.recipe)
    registry = Registry.chosen(req.registry, settings)
    entries = {e.name: e for e in recipe_entries(recipe, req.recipe, registry)}
    units = units_of_recipe(list(recipe.members), recipe.groups)
    served = _teachers(units, entries, req.recipe)
    predictions = predict_members(fold_members(units), registry, settings, parts=("val", "test"), tta=req.tta,
                                  device=req.device, batch_size=req.batch_size, entries=entries)
    inputs, _ = unit_inputs(units, entries, predictions, settings)
    if inputs.test_probs is None:
        raise UserError(f"recipe {req.recipe}: its members have no test predictions (no test list in their data)")
    _, val_probs = apply(recipe, inputs.by_name("val"))
    _, overall = apply(recipe, inputs.by_name("test"))
    by_fold = _fold_probs(recipe, served, predictions, np.asarray(inputs.test_ids))
    passing = {k: pseudo.select(p, req.threshold, req.per_class_cap) for k, p in by_fold.items()}
    calib = pseudo.calibration(np.asarray(val_probs), inputs.val_labels, req.threshold)
    first = entries[units[0].members[0]]
    made = PseudoSet(
        name=req.name, classes=list(inputs.classes), ids=np.asarray(inputs.test_ids).astype(str),
        probs=by_fold, passing=passing,
        meta={"recipe": Path(req.recipe).resolve().as_posix(), "recipe_sha256": sha256_file(Path(req.recipe)),
              "rule": recipe.rule, "threshold": float(req.threshold), "per_class_cap": req.per_class_cap,
              "split": {"name": first.split.name, "sha256": first.split.sha256, "n_folds": first.split.n_folds},
              "folds": {k: {m: entries[m].split.fold for m in chosen.values()} for k, chosen in served.items()},
              "calibration": calib, "test_rows": len(inputs.test_ids)})
    table = pseudo.table(made.ids, made.classes, np.asarray(overall, dtype=np.float64), by_fold, passing)
    count_table = pseudo.counts(made.classes, by_fold, passing)
    write_set(folder, made, table, count_table)
    log.info("pseudo-label set %s: fold teachers %s", req.name,
             "; ".join(f"fold {k}: {', '.join(c.values())}" for k, c in served.items()))
    return PseudoResult(folder, count_table, calib, len(made.ids), served)
