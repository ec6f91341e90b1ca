"""Write the report that decides which members to keep: scikit-learn reports, confusion matrices,
learning curves, disagreement heatmaps, the honest member-versus-ensemble table and a gallery
of the ensemble's mistakes, as one self-contained report.html (and report.md beside it).

    python -m scripts.report --members a b c [--recipe recipe.yaml | --rule soft --weights a=2]
                             [--name NAME] [--out reports/NAME] [--wandb disabled|offline|online]

The ensemble is a recipe file (e.g. one written by a selection step) or a rule with named weights.
Members not in the recipe are still scored, so you can see what leaving them out costs.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from core.errors import UserError, cli_entry
from core.registry import Registry
from core.settings import load_settings
from ensemble.composite import CompositeSpec
from ensemble.inputs import gather, parse_weights
from ensemble.recipe import PER_TASK_RULES, RULES, Recipe, apply
from ensemble.report import ReportInputs, Vote, build_report, print_table
from ensemble.report_sources import composite_of, ensemble_log, log_to_wandb, run_folder, val_image_paths
from ensemble.wandb_log import MODES
from members.data.sources import load_dataset
from members.train import console_logging
from predict.imports import member_entry
from predict.loading import member_config
from predict.run import predict_members


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", nargs="+", help="member names from the registry (default: the recipe's)")
    parser.add_argument("--recipe", help="recipe YAML (rule, members with weights, temperatures, composite)")
    parser.add_argument("--rule", choices=RULES, help="voting rule when no --recipe is given (default soft)")
    parser.add_argument("--weights", nargs="*", default=[], help="member=weight pairs (others weigh 1)")
    parser.add_argument("--name", default="ensemble", help="names the default report folder and the wandb run")
    parser.add_argument("--out", help="report folder (default: reports/<name>); replaced whole")
    parser.add_argument("--wandb", choices=MODES, default="disabled",
                        help="log the ensemble to wandb (online falls back to offline without a login)")
    parser.add_argument("--submission", help="a submission CSV to attach to the wandb artifact")
    parser.add_argument("--gallery", type=int, default=30, help="most misclassified images shown (default 30)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the gain's interval")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cross-fit folds and the bootstrap")
    parser.add_argument("--tta", nargs="?", const="flip", default="none", metavar="VIEWS",
                        help="test-time views, as for scripts.vote: flip, shift or flip,shift (alone: flip)")
    parser.add_argument("--registry", help="registry file (default: <output root>/registry.yaml)")
    return parser.parse_args(argv)


def read_recipe(path: Path) -> Recipe:
    if not path.is_file():
        raise UserError(f"recipe {path} does not exist")
    try:
        return Recipe.from_yaml(path)
    except yaml.YAMLError as err:
        raise UserError(f"recipe {path} is not valid YAML") from err
    except (KeyError, TypeError, ValueError) as err:
        detail = f"missing field {err}" if isinstance(err, KeyError) else str(err)
        raise UserError(f"recipe {path}: {detail}") from err


def recipe_from_rule(rule: str, weight_items: list[str], members: list[str],
                     composite: CompositeSpec | None) -> Recipe:
    """A recipe made of --rule and named --weights; per-task rules take the members' composite layout."""
    weights = parse_weights(weight_items, members)
    per_task = rule in PER_TASK_RULES
    if per_task and composite is None:
        raise UserError(f"rule {rule} votes per task, but member '{members[0]}' declares no composite label "
                        f"layout (data.composite)")
    return Recipe(rule, dict(zip(members, weights.tolist())), composite=composite.to_dict() if per_task else None)


def check_members(members: list[str], recipe_members: list[str]) -> None:
    if len(set(members)) != len(members):
        raise UserError("a member is named twice in --members")
    absent = [m for m in recipe_members if m not in members]
    if absent:
        raise UserError(f"the recipe uses member '{absent[0]}', which is not among --members ({', '.join(members)})")


def check_args(args: argparse.Namespace) -> tuple[list[str], Recipe | None]:
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


@cli_entry
def main(argv: list[str]) -> int:
    args = parse(argv)
    members, given = check_args(args)
    console_logging()
    settings = load_settings()
    registry = Registry(args.registry or settings.registry)
    entries = [member_entry(registry, settings, name) for name in members]  # imported members too
    config = member_config(registry, entries[0])
    composite = composite_of(entries, config)
    recipe = given or recipe_from_rule(args.rule or "soft", args.weights, members, composite)
    if composite is None and recipe.composite is not None:
        composite = CompositeSpec.from_dict(recipe.composite)

    inputs = gather(members, entries, predict_members(members, registry, settings, splits=("val",), tta=args.tta),
                    with_test=False)
    probs = inputs.by_name("val")
    try:
        labels, table = apply(recipe, probs)
    except ValueError as err:
        raise UserError(f"the recipe cannot be applied to these members: {err}") from err
    dataset = load_dataset(config.data, settings.data_root)
    primary = f"ensemble:{recipe.rule}"
    weights_text = ", ".join(f"{n}={w:g}" for n, w in recipe.members.items())
    summary = [f"Ensemble `{primary}`: {weights_text}" + (f" ({recipe.note})" if recipe.note else "")]
    summary += [f"Recipe: `{args.recipe}`"] if args.recipe else []
    result = build_report(ReportInputs(
        title=f"Ensemble report: {args.name}", classes=inputs.classes, y_val=inputs.val_labels, members=probs,
        ensembles={primary: Vote(labels, table)}, primary=primary, recipe=recipe,
        val_paths=val_image_paths(dataset.train, inputs.val_ids),
        run_dirs={e["name"]: run_folder(registry, e) for e in entries}, composite=composite, summary=summary,
        seed=args.seed, n_boot=args.n_boot, gallery_limit=args.gallery),
        Path(args.out or settings.output_root / "reports" / args.name))

    print_tables(result)
    log = ensemble_log(args.name, entries, config, settings.wandb_entity, result, inputs.val_labels, labels,
                       inputs.classes, Path(args.submission) if args.submission else None)
    folder = log_to_wandb(args.wandb, settings.output_root, log)
    if folder is not None:
        print(f"wandb:  {folder}")
    print(f"report: {result.html}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
