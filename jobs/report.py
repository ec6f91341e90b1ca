"""The report job: the page that decides which members to keep (see scripts/report.py)."""
from __future__ import annotations

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
from jobs.fold_groups import row_groups
from jobs.inputs import gather, parse_weights
from jobs.pseudo_set import pseudo_notes
from jobs.vote import resolve_members
from predict.loading import member_config
from predict.run import predict_members
from report.builder import ReportInputs, Vote, build_report, check_report_target, print_table
from report.lookups import composite_of, ensemble_log, log_to_wandb, run_folder, val_image_paths
from report.wandb_log import MODES

__all__ = ["MODES", "RULES", "print_tables", "report_command"]

# A report without a recipe applies a rule that fits nothing (a fitted rule comes as a vote's recipe file).
RULES = tuple(name for name, rule in rules.RULES.items() if not rule.fitted)


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


def check_args(args) -> tuple[list[str], Recipe | None]:
    """The members to report and the --recipe file, if any; every mistake here costs no prediction."""
    if args.gallery < 0 or args.n_boot < 1:
        raise UserError("--gallery must be >= 0 and --n-boot >= 1")
    if args.recipe and (args.rule or args.weights):
        raise UserError("give either --recipe or --rule/--weights, not both")
    if args.submission and not Path(args.submission).is_file():
        raise UserError(f"submission {args.submission} does not exist")
    given = read_recipe(Path(args.recipe)) if args.recipe else None
    members = args.members or (list(given.members) if given else None)
    if not members:
        raise UserError("name the members with --members (or give a --recipe that names them)")
    check_members(members, list(given.members) if given else [])
    return members, given


def print_tables(result) -> None:
    print_table("Validation (macro F1 is the metric):", result.val_table)
    print_table("Honest comparison (cross-fitted; gain vs the best member, 95% CI):", result.compare_table)


def report_command(args, settings: Settings):
    """Build the report `args` (the parsed report arguments) asks for; return (result, wandb folder)."""
    members, given = check_args(args)
    folder = Path(args.report) if args.report else path_inside(settings.output_root / "reports", args.name, "--name")
    check_name(args.name, "--name")  # it also names the wandb run, with or without --report
    check_report_target(folder)  # before any prediction work: only a report folder is ever replaced...
    atomic.check_replaceable([folder], args.overwrite)  # ...and only when asked
    registry = Registry.chosen(args.registry, settings)
    resolved = resolve_members(registry, settings, members)  # one registry read; imported members too
    entries = [resolved[name] for name in members]
    config = member_config(registry, entries[0])
    listing = DatasetListing()
    composite = composite_of(entries, config)
    recipe = given or recipe_from_rule(args.rule or "soft", args.weights, members, composite)
    if composite is None and recipe.composite is not None:
        composite = CompositeSpec.from_dict(recipe.composite)

    inputs = gather(members, entries, predict_members(members, registry, settings, splits=("val",), tta=args.tta,
                                    entries=resolved, listing=listing),
                    with_test=False)
    probs = inputs.by_name("val")
    try:
        labels, table = apply(recipe, probs)
    except ValueError as err:
        raise UserError(f"the recipe cannot be applied to these members: {err}") from err
    dataset = listing.load(config.data, settings.data_root)
    primary = f"ensemble:{recipe.rule}"
    weights_text = ", ".join(f"{n}={w:g}" for n, w in recipe.members.items())
    summary = [f"Ensemble `{primary}`: {weights_text}" + (f" ({recipe.note})" if recipe.note else "")]
    summary += [f"Recipe: `{args.recipe}`"] if args.recipe else []
    summary += pseudo_notes({e.name: [e] for e in entries})
    result = build_report(ReportInputs(
        title=f"Ensemble report: {args.name}", classes=inputs.classes, y_val=inputs.val_labels, members=probs,
        ensembles={primary: Vote(labels, table)}, primary=primary, recipe=recipe,
        val_paths=val_image_paths(dataset.train, inputs.val_ids),
        run_dirs={e.name: run_folder(registry, e) for e in entries}, composite=composite, summary=summary,
        member_splits={e.name: e.split.to_dict() for e in entries},
        seed=args.seed, n_boot=args.n_boot, gallery_limit=args.gallery,
        groups=row_groups(entries[0], inputs.val_ids, settings.splits)),
        folder)

    log = ensemble_log(args.name, entries, config, settings.wandb_entity, result, inputs.val_labels, labels,
                       inputs.classes, Path(args.submission) if args.submission else None)
    return result, log_to_wandb(args.wandb, settings.output_root, log)
