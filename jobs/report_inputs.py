"""The report's inputs, assembled in one place for both jobs that build a report: the vote job (its
units, with fold groups) and the report job (single members, each a unit of its own)."""
from __future__ import annotations

import numpy as np

from core.entry import RegistryEntry
from core.registry import Registry
from ensemble.composite import CompositeSpec
from ensemble.recipe import Recipe
from imagedata.sources import Dataset
from jobs.fold_groups import Unit
from jobs.inputs import VoteInputs
from jobs.pseudo_set import pseudo_notes
from report.builder import ReportInputs, VoteOutcome
from report.lookups import run_folder, val_image_paths


def vote_outcomes(val: dict[str, tuple[np.ndarray, np.ndarray]], primary: str) -> dict[str, VoteOutcome]:
    """Each vote's validation labels by name; the primary's table too (it ranks the gallery's mistakes)."""
    outcomes = {name: VoteOutcome(labels) for name, (labels, _) in val.items()}
    outcomes[primary].probs = val[primary][1]
    return outcomes


def report_inputs(name: str, inputs: VoteInputs, units: list[Unit], entries: dict[str, RegistryEntry],
                  val: dict[str, tuple[np.ndarray, np.ndarray]], primary: str, recipe: Recipe, registry: Registry,
                  dataset: Dataset, composite: CompositeSpec | None, summary: list[str], groups: np.ndarray | None,
                  **options) -> ReportInputs:
    """What the builder reads: the units' validation probabilities, each vote's labels (`val`: name ->
    (labels, table), as ensemble.recipe.apply returns them), their images, run folders and splits, and
    the summary with the pseudo-label notes last. `options` are the other ReportInputs fields a job sets
    (test rows, comparison, costs, bootstrap settings, extra sections)."""
    return ReportInputs(
        title=f"Ensemble report: {name}", classes=inputs.classes, y_val=inputs.val_labels,
        members=inputs.by_name("val"), ensembles=vote_outcomes(val, primary), primary=primary, recipe=recipe,
        val_paths=val_image_paths(dataset.train, inputs.val_ids),
        run_dirs={u.name: run_folder(registry, entries[u.name]) for u in units if not u.group},
        composite=composite, groups=groups,
        summary=[*summary, *pseudo_notes({u.name: [entries[m] for m in u.members] for u in units})],
        member_splits={m: entries[m].split.to_dict() for u in units for m in u.members}, **options)
