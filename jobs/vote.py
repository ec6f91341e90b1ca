"""The vote job: registered members → submission CSV, its recipe, and the report, in one pass.

Everything is resolved once and handed on: the registry entries (one registry read), the
dataset listing (shared with prediction), each vote (computed once per split, by name), and
the honest cross-fitted comparison (computed once, shown by the console and the report alike).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from core.config import MemberConfig, load_config
from core.entry import RegistryEntry
from core.errors import UserError
from core.registry import Registry
from core.settings import Settings
from ensemble.budget import best_within_budget, check_budget, check_costs
from ensemble.choose import choose_recipe, needs_comparison
from ensemble.compare import compare
from ensemble.composite import CompositeSpec
from ensemble.recipe import Recipe, apply
from ensemble.task_vote import TaskRecipe
from imagedata.sources import Dataset, DatasetListing
from jobs import outputs
from jobs.audit import audit_report_sections
from jobs.fold_groups import Unit, check_units, expand_units, fold_members, unit_inputs, units_of_recipe
from jobs.inputs import VoteInputs, parse_weights
from jobs.report_inputs import report_inputs
from jobs.task_vote import load_recipe, task_vote, uses_tasks
from predict.imports import member_entry
from predict.run import predict_members
from report import submission
from report.builder import LabelledTest, ReportResult, build_report, print_table
from report.lookups import composite_of, ensemble_log, log_to_wandb

__all__ = ["VoteRequest", "VoteResult", "print_vote", "vote"]

PLAIN_RULES = ("hard", "soft")  # always shown beside the submitted recipe, with the user's weights


@dataclass
class VoteRequest:
    members: list[str] | None = None    # member names or glob patterns over registry names (fold groups)
    groups: list[str] = field(default_factory=list)  # name prefixes: each one fold group, named PREFIX*
    recipe: str | None = None          # a saved recipe file: regenerate its ensemble exactly
    weights: list[str] = field(default_factory=list)
    rule: str = "soft"
    compare: bool = False
    name: str = "ensemble"
    out: str | None = None
    report: str | None = None
    overwrite: bool = False
    wandb: str = "disabled"
    tta: str = "none"
    registry: str | None = None
    budget_ms: float | None = None     # --rule best among the member subsets whose measured cost fits


@dataclass
class VoteResult:
    submission: Path
    recipe_path: Path
    recipe: Recipe
    report: ReportResult
    wandb_run: Path | None
    compare: bool


def test_labels(labels_csv: Path | None, ids: np.ndarray) -> np.ndarray | None:
    if labels_csv is None or not labels_csv.exists():
        return None
    labels = pd.read_csv(labels_csv, dtype={"ImageID": str}, keep_default_na=False).set_index("ImageID")["label"]
    return labels.loc[list(ids)].to_numpy()


def members_and_recipe(req: VoteRequest) -> tuple[list[str], Recipe | TaskRecipe | None]:
    if req.recipe:
        if req.budget_ms is not None:  # a saved recipe is already chosen: a budget would be silently ignored
            raise UserError(f"--budget-ms chooses an ensemble, and recipe {req.recipe} is one already; "
                            "give one or the other")
        recipe = load_recipe(req.recipe)  # a flat recipe, or a task vote's (jobs/task_vote.py)
        names = recipe.member_names if isinstance(recipe, TaskRecipe) else list(recipe.members)
        if req.members and sorted(req.members) != sorted(names):
            raise UserError(f"--members differ from the members of recipe {req.recipe}; give one or the other")
        return names, recipe
    if not req.members and not req.groups:
        raise UserError("name the members to vote with --members or --groups (or give a saved --recipe)")
    members = list(req.members or [])
    if len(set(members)) != len(members):
        raise UserError("a member is named twice in --members; give weights with --weights instead")
    return members, None


def primary_name(req: VoteRequest, recipe: Recipe) -> str:
    """How the submitted ensemble is labelled in tables: `vote:<rule>` for plain votes, else `recipe:<rule>`."""
    if req.recipe:
        return f"recipe:{recipe.rule}"
    return f"vote:{req.rule}" if req.rule in PLAIN_RULES else f"recipe:{req.rule}"


def resolve_members(registry: Registry, settings: Settings, names: list[str],
                    registered: dict[str, RegistryEntry] | None = None) -> dict[str, RegistryEntry]:
    """Every member's entry from one read of the registry (or the entries already read, `registered`);
    imported members get theirs from the cache."""
    if registered is None:
        registered = {entry.name: entry for entry in registry.members()}
    return {name: registered[name] if name in registered else member_entry(registry, settings, name)
            for name in names}


def ensemble_recipes(primary: str, recipe: Recipe, weights: dict[str, float]) -> dict[str, Recipe]:
    """The votes to compute, by name: the plain rules with the user's weights, then the submitted one.

    A submitted plain vote is the same recipe as its table row, so it is computed once."""
    recipes = {f"vote:{rule}": Recipe(rule, dict(weights)) for rule in PLAIN_RULES}
    recipes[primary] = recipe
    return recipes


def unit_costs(units, predictions: dict) -> dict[str, float]:
    """Measured ms per image of each voting unit: a member's own, a fold group's the sum of its fold models'."""
    def member_cost(name: str) -> float:
        measured = [p for p in predictions[name].values() if np.isfinite(p.ms_per_image)]
        return max(measured, key=lambda p: len(p.ids)).ms_per_image if measured else float("nan")

    return {u.name: float(sum(member_cost(m) for m in u.members)) for u in units}


def _budget_choice(req: VoteRequest, inputs, costs: dict[str, float], composite, groups, comparison):
    """(recipe, comparison) for `--rule best --budget-ms N`; the comparison of the chosen subset."""
    if req.rule != "best":
        raise UserError("--budget-ms chooses the best ensemble that fits; give it with --rule best")
    costs = check_costs(costs, list(costs))
    if sum(costs.values()) <= req.budget_ms:
        check_budget(costs, req.budget_ms)
        recipe = choose_recipe("best", {}, composite.to_dict() if composite else None, comparison)
        recipe.cost_ms = float(sum(costs[n] for n in recipe.members))
        recipe.note += f"; every member fits --budget-ms {req.budget_ms:g} ({recipe.cost_ms:.3g} ms per image)"
        return recipe, comparison
    return best_within_budget(inputs.by_name("val"), inputs.val_labels, len(inputs.classes), costs, req.budget_ms,
                              composite=composite.to_dict() if composite else None, groups=groups)


def _comparison_and_recipe(req: VoteRequest, given: Recipe | None, inputs, composite, groups,
                           costs: dict[str, float], weights: dict[str, float]):
    """One honest comparison (shown by the console with --compare, and always by the report), and the recipe:
    the given file's, the budget's choice, or --rule's. Returns (recipe, comparison, costs)."""
    comparison = None
    if len(inputs.names) > 1:
        try:
            extra = [req.rule] + ([given.method] if given is not None and given.method else [])
            comparison = compare(inputs.by_name("val"), inputs.val_labels, len(inputs.classes),
                                 composite.to_dict() if composite else None, groups=groups, extra=extra)
        except ValueError as err:
            if needs_comparison(req.rule):
                raise UserError(f"rule '{req.rule}' cannot be cross-fitted on these rows: {err}") from err
    if given is not None:
        return given, comparison, costs
    if req.budget_ms is not None:
        return (*_budget_choice(req, inputs, costs, composite, groups, comparison), costs)
    return choose_recipe(req.rule, weights, composite.to_dict() if composite else None, comparison), comparison, costs


def voting_units(req: VoteRequest, registry: Registry, settings: Settings, names: list[str],
                 recipe: Recipe | TaskRecipe | None) -> tuple[list[Unit], dict[str, RegistryEntry]]:
    """The voting units (a recipe's, or those --members/--groups name) and every fold member's entry."""
    registered = {entry.name: entry for entry in registry.members()}  # the one registry read
    if recipe is not None:
        units = units_of_recipe(names, recipe.groups)
    else:
        units = expand_units(names, req.groups, list(registered))
    return units, resolve_members(registry, settings, fold_members(units), registered)


@dataclass
class Gathered:
    """What a flat vote reads before it chooses: the units' probabilities on shared rows, and their data."""
    inputs: VoteInputs
    groups: np.ndarray | None       # the split's group of each validation row
    config: MemberConfig            # the first member's, for the data and the wandb record
    dataset: Dataset
    composite: CompositeSpec | None
    costs: dict[str, float]         # measured ms per image of each unit


def gather_units(req: VoteRequest, settings: Settings, registry: Registry, units: list[Unit],
                 entries: dict[str, RegistryEntry]) -> Gathered:
    """Predict (or read the cache), stack the units' predictions, and load the data they were made on."""
    members = fold_members(units)
    listing = DatasetListing()
    predictions = predict_members(members, registry, settings, tta=req.tta, entries=entries, listing=listing)
    inputs, groups = unit_inputs(units, entries, predictions, settings)
    ordered = [entries[n] for n in members]
    config = load_config(registry.resolve(ordered[0].config))
    dataset = listing.load(config.data, settings.data_root)
    composite = composite_of(ordered, config)
    if inputs.test_probs is None:
        raise UserError("no test predictions: the members' data config names no test list")
    return Gathered(inputs, groups, config, dataset, composite, unit_costs(units, predictions))


def apply_votes(votes: dict[str, Recipe], inputs: VoteInputs) -> tuple[dict[str, tuple], dict[str, np.ndarray]]:
    """Every vote on the validation rows (labels, table) and on the test rows (labels), by name."""
    try:
        val = {name: apply(r, inputs.by_name("val")) for name, r in votes.items()}
        test = {name: apply(r, inputs.by_name("test"))[0] for name, r in votes.items()}
    except ValueError as err:  # e.g. a saved recipe's stacker or decision weights made for other classes
        raise UserError(f"the recipe cannot be applied to these members: {err}") from err
    return val, test


def labelled_test(dataset: Dataset, inputs: VoteInputs, test: dict[str, np.ndarray]) -> LabelledTest | None:
    """Each unit's and each vote's test predictions beside the true labels, when the data has them."""
    truth = test_labels(dataset.test_labels, inputs.test_ids)
    if truth is None:
        return None
    return LabelledTest(truth, {name: inputs.test_probs[i].argmax(1) for i, name in enumerate(inputs.names)} | test)


def summary_lines(out: Path, recipe: Recipe, recipe_path: Path) -> list[str]:
    weights_text = ", ".join(f"{n}={w:.3g}" for n, w in recipe.members.items())
    summary = [f"Submission: `{out}` (rule `{recipe.rule}`, weights {weights_text}); recipe: `{recipe_path}`"]
    return summary + ([f"Why this recipe: {recipe.note}"] if recipe.note else [])


def vote(req: VoteRequest, settings: Settings) -> VoteResult:
    names, recipe = members_and_recipe(req)
    out, report_dir = outputs.default_paths(settings.output_root, req.name, req.out, req.report)
    outputs.check_targets(out, report_dir)  # before any prediction work
    registry = Registry.chosen(req.registry, settings)
    units, entries = voting_units(req, registry, settings, names, recipe)
    if uses_tasks(entries, recipe):  # task members take part: voted task by task
        recipe_path, task_recipe, result = task_vote(req, settings, registry, units, entries, recipe, out, report_dir)
        return VoteResult(out, recipe_path, task_recipe, result, None, req.compare)
    return flat_vote(req, settings, registry, units, entries, recipe, out, report_dir)


def flat_vote(req: VoteRequest, settings: Settings, registry: Registry, units: list[Unit],
              entries: dict[str, RegistryEntry], given: Recipe | None, out: Path, report_dir: Path) -> VoteResult:
    """Units voted as one label set: choose (or take) the recipe, apply it, commit the outputs with the report."""
    check_units(units, entries)  # before any prediction work
    names = [u.name for u in units]
    weights = dict(zip(names, parse_weights(req.weights, names).tolist()))
    got = gather_units(req, settings, registry, units, entries)
    recipe, comparison, costs = _comparison_and_recipe(req, given, got.inputs, got.composite, got.groups, got.costs,
                                                        weights)
    group_units = {u.name: u.members for u in units if u.group and u.name in recipe.members}
    if group_units:
        recipe = replace(recipe, groups=group_units)  # a new Recipe: checks the groups, records the fold-group rule
    primary = primary_name(req, recipe)
    val, test = apply_votes(ensemble_recipes(primary, recipe, weights), got.inputs)
    frame = submission.build(got.inputs.test_ids, test[primary], got.dataset.test_info)
    recipe_path = outputs.recipe_path_of(out)
    report = report_inputs(
        req.name, got.inputs, units, entries, val, primary, recipe, registry, got.dataset, got.composite,
        summary_lines(out, recipe, recipe_path), got.groups, test=labelled_test(got.dataset, got.inputs, test),
        compare=comparison, costs=costs,
        extra_sections=audit_report_sections(fold_members(units), settings.output_root))  # when its units have one
    # Submission, recipe and report are committed together, once the report is built (jobs/outputs.py).
    _, result = outputs.commit_vote(out, frame, len(got.inputs.classes), got.dataset.test_info, recipe, req.overwrite,
                                    lambda: build_report(report, report_dir), report_dir)
    wandb_run = log_to_wandb(req.wandb, settings.output_root, ensemble_log(
        req.name, [entries[m] for m in fold_members(units)], got.config, settings.wandb_entity, result,
        got.inputs.val_labels, val[primary][0], got.inputs.classes, out))
    return VoteResult(out, recipe_path, recipe, result, wandb_run, req.compare)


def print_vote(result: VoteResult) -> None:
    """The console's view of a vote: the same tables the report shows, then where everything went."""
    report, recipe = result.report, result.recipe
    print_table("Validation (macro F1 is the metric; in-sample for fitted rules):", report.val_table)
    if result.compare:
        print_table("Honest comparison (cross-fitted on validation; gain vs the best member, 95% paired "
                    f"bootstrap CI; resampling unit: {report.metrics.get('resampling')}):", report.compare_table)
        print_gain_verdict(report.compare_table)
    if report.metrics.get("submitted_note"):
        print(f"\nsubmitted row: {report.metrics['submitted_note']}")
    print_table("Test rows of the submission (true labels known for the demo data):", report.test_table)
    weights_text = ", ".join(f"{n}={w:.3g}" for n, w in recipe.members.items())
    print(f"\nsubmission: {result.submission}  (rule {recipe.rule}, weights {weights_text})")
    print(f"recipe:     {result.recipe_path}")
    if recipe.note:
        print(f"why:        {recipe.note}")
    if result.wandb_run is not None:
        print(f"wandb:      {result.wandb_run}")
    print(f"report:     {report.html}")


VERDICT_TEXT = {"better": "the interval lies above zero: the ensemble really helps",
                "worse": "the interval lies below zero: the ensemble is WORSE than its best member",
                "no evidence": "the interval includes zero: no evidence the ensemble beats its best member"}


def print_gain_verdict(table: pd.DataFrame | None) -> None:
    """Say plainly whether any ensemble beat the best member on rows it was not fitted on."""
    if table is None:
        return
    ensembles = table[table["kind"] == "ensemble"].dropna(subset=["f1_macro_honest"])
    if ensembles.empty:
        return
    top = ensembles.loc[ensembles["f1_macro_honest"].idxmax()]
    print(f"\nbest honest rule: {top['method']} (macro F1 {top['f1_macro_honest']:.4f}); gain vs best member "
          f"{top['gain']:+.4f} [{top['ci_low']:+.4f}, {top['ci_high']:+.4f}]: {top['verdict']} "
          f"({VERDICT_TEXT[top['verdict']]})")
