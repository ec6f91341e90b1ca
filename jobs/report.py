"""The report job: the page that decides which members to keep (see scripts/report.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core import atomic
from core.errors import UserError
from core.names import check_name, path_inside
from core.registry import Registry
from core.settings import Settings
from ensemble import rules
from ensemble.composite import CompositeSpec
from ensemble.recipe import Recipe, apply
from imagedata.sources import DatasetListing
from jobs.fold_groups import row_groups, units_of_recipe
from jobs.inputs import gather, parse_weights
from jobs.report_inputs import report_inputs
from jobs.vote import resolve_members
from predict.loading import member_config
from predict.run import predict_members
from report.builder import ReportResult, build_report, check_report_target, print_table
from report.lookups import composite_of, ensemble_log, log_to_wandb

__all__ = ["ReportJobResult", "ReportRequest", "print_tables", "report_command"]


def read_recipe(path: Path) -> Recipe:
    return Recipe.from_yaml(path)


def recipe_from_rule(rule: str, weight_items: list[str], members: list[str],
                     composite: CompositeSpec | None) -> Recipe:
    """A recipe made of --rule and named --weights; per-task rules take the members' composite layout."""
    weights = parse_weights(weight_items, members)
    per_task = rules.RULES[rule].composite
    if per_task and composite is None:
        raise UserError(f"rule {rule} votes per task, but member '{members[0]}' declares no composite label "
                        f"layout (data.composite)")
    return Recipe(rules.RULES[rule].apply, dict(zip(members, weights.tolist())), composite=composite.to_dict() if per_task else None,
                  method=rule)


def check_members(members: list[str], recipe_members: list[str]) -> None:
    if len(set(members)) != len(members):
        raise UserError("a member is named twice in --members")
    absent = [m for m in recipe_members if m not in members]
    if absent:
        raise UserError(f"the recipe uses member '{absent[0]}', which is not among --members ({', '.join(members)})")


@dataclass
class ReportRequest:
    members: list[str] | None = None   # default: the recipe's
    recipe: str | None = None          # a recipe YAML; else --rule with named --weights
    rule: str | None = None            # default soft (a rule that fits nothing)
    weights: list[str] = field(default_factory=list)
    name: str = "ensemble"             # names the default report folder and the wandb run
    report: str | None = None          # the report folder (default: reports/<name>)
    overwrite: bool = False
    wandb: str = "disabled"
    submission: str | None = None      # a submission CSV to attach to the wandb artifact
    gallery: int = 30                  # most misclassified images shown
    n_boot: int = 1000                 # bootstrap resamples for the gain's interval
    seed: int = 0                      # seed of the cross-fit folds and the bootstrap
    tta: str = "none"
    registry: str | None = None


@dataclass
class ReportJobResult:
    report: ReportResult
    wandb_run: Path | None             # the wandb run folder, when the ensemble was logged


def check_request(req: ReportRequest) -> tuple[list[str], Recipe | None]:
    """The members to report and the --recipe file, if any; every mistake here costs no prediction."""
    if req.gallery < 0 or req.n_boot < 1:
        raise UserError("--gallery must be >= 0 and --n-boot >= 1")
    if req.recipe and (req.rule or req.weights):
        raise UserError("give either --recipe or --rule/--weights, not both")
    if req.submission and not Path(req.submission).is_file():
        raise UserError(f"submission {req.submission} does not exist")
    given = read_recipe(Path(req.recipe)) if req.recipe else None
    members = req.members or (list(given.members) if given else None)
    if not members:
        raise UserError("name the members with --members (or give a --recipe that names them)")
    check_members(members, list(given.members) if given else [])
    return members, given


def print_tables(result: ReportResult) -> None:
    print_table("Validation (macro F1 is the metric):", result.val_table)
    print_table("Honest comparison (cross-fitted; gain vs the best member, 95% CI):", result.compare_table)


def report_folder(req: ReportRequest, settings: Settings) -> Path:
    """The folder to (re)write, refused before any prediction work unless it may be replaced."""
    folder = Path(req.report) if req.report else path_inside(settings.output_root / "reports", req.name, "--name")
    check_name(req.name, "--name")  # it also names the wandb run, with or without --report
    check_report_target(folder)  # only a report folder is ever replaced...
    atomic.check_replaceable([folder], req.overwrite)  # ...and only when asked
    return folder


def report_command(req: ReportRequest, settings: Settings) -> ReportJobResult:
    """Build the report the request asks for, and log it to wandb when asked."""
    members, given = check_request(req)
    folder = report_folder(req, settings)
    registry = Registry.chosen(req.registry, settings)
    entries = resolve_members(registry, settings, members)  # one registry read; imported members too
    ordered = [entries[name] for name in members]
    config = member_config(registry, ordered[0])
    listing = DatasetListing()
    composite = composite_of(ordered, config)
    recipe = given or recipe_from_rule(req.rule or "soft", req.weights, members, composite)
    if composite is None and recipe.composite is not None:
        composite = CompositeSpec.from_dict(recipe.composite)

    inputs = gather(members, ordered, predict_members(members, registry, settings, parts=("val",), tta=req.tta,
                                                      entries=entries, listing=listing), with_test=False)
    try:
        labels, table = apply(recipe, inputs.by_name("val"))
    except ValueError as err:
        raise UserError(f"the recipe cannot be applied to these members: {err}") from err
    dataset = listing.load(config.data, settings.data_root)
    primary = f"ensemble:{recipe.rule}"
    weights_text = ", ".join(f"{n}={w:g}" for n, w in recipe.members.items())
    summary = [f"Ensemble `{primary}`: {weights_text}" + (f" ({recipe.note})" if recipe.note else "")]
    summary += [f"Recipe: `{req.recipe}`"] if req.recipe else []
    result = build_report(report_inputs(
        req.name, inputs, units_of_recipe(members, None), entries, {primary: (labels, table)}, primary, recipe,
        registry, dataset, composite, summary, row_groups(ordered[0], inputs.val_ids, settings.splits),
        seed=req.seed, n_boot=req.n_boot, gallery_limit=req.gallery), folder)

    log = ensemble_log(req.name, ordered, config, settings.wandb_entity, result, inputs.val_labels, labels,
                       inputs.classes, Path(req.submission) if req.submission else None)
    return ReportJobResult(result, log_to_wandb(req.wandb, settings.output_root, log))
