"""Vote registered members into a submission, and write the report.

    python -m scripts.vote --members a b c [--weights a=2 b=1] [--rule soft|hard|...|best] [--compare]
                           [--out submissions/NAME.csv] [--report reports/NAME] [--overwrite]
                           [--wandb disabled|offline|online]
    python -m scripts.vote --recipe submissions/NAME.recipe.yaml --name NAME2   # regenerate exactly

Members and weights are named, never positional. One member alone is also a valid "ensemble".
Every vote saves its recipe (members, weights, temperatures, rule) next to the submission.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from core import atomic
from core.errors import UserError, cli_entry
from core.registry import Registry
from core.settings import load_settings
from ensemble import submission
from ensemble.inputs import check_compatible, gather, parse_weights
from ensemble.choose import ALL_RULES, choose_recipe
from ensemble.recipe import Recipe, apply
from ensemble.report import LabelledTest, ReportInputs, Vote, build_report, print_table
from ensemble.report_sources import composite_of, ensemble_log, log_to_wandb, run_folder, val_image_paths
from ensemble.voting import hard_vote, soft_vote
from ensemble.wandb_log import MODES
from members.data.sources import load_dataset
from members.train import console_logging
from predict.imports import member_entry
from predict.loading import member_config
from predict.run import predict_members

RULES = {"hard": lambda p, w: hard_vote(p, w), "soft": lambda p, w: soft_vote(p, w)[0]}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.vote", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", nargs="+", help="member names from the registry (or give --recipe)")
    parser.add_argument("--recipe", help="a saved recipe YAML: regenerate its ensemble exactly")
    parser.add_argument("--weights", nargs="*", default=[], help="member=weight pairs (others weigh 1)")
    parser.add_argument("--rule", choices=ALL_RULES, default="soft",
                        help="rule used for the submission; fitted rules and 'best' are chosen on validation "
                             "and scored by cross-fitting")
    parser.add_argument("--compare", action="store_true",
                        help="print every rule's honest (cross-fitted) validation score and gain with its 95%% CI")
    parser.add_argument("--name", default="ensemble", help="names the default submission and report paths")
    parser.add_argument("--out", help="submission CSV (default: submissions/<name>.csv)")
    parser.add_argument("--report", help="report folder (default: reports/<name>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing submission")
    parser.add_argument("--wandb", choices=MODES, default="disabled",
                        help="log the ensemble to wandb (online falls back to offline without a login)")
    parser.add_argument("--tta", nargs="?", const="flip", default="none", metavar="VIEWS",
                        help="test-time views per member: flip, shift or flip,shift (alone: flip); part of the cache key")
    parser.add_argument("--registry", help="registry file (default: <output root>/registry.yaml)")
    return parser.parse_args(argv)


def test_labels(labels_csv: Path | None, ids: np.ndarray) -> np.ndarray | None:
    if labels_csv is None or not labels_csv.exists():
        return None
    labels = pd.read_csv(labels_csv, dtype={"ImageID": str}).set_index("ImageID")["label"]
    return labels.loc[list(ids)].to_numpy()


def members_and_recipe(args: argparse.Namespace) -> tuple[list[str], Recipe | None]:
    if args.recipe:
        try:
            recipe = Recipe.from_yaml(args.recipe)
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise UserError(f"recipe {args.recipe} cannot be read: {err}") from err
        if args.members and sorted(args.members) != sorted(recipe.members):
            raise UserError(f"--members differ from the members of recipe {args.recipe}; give one or the other")
        return list(recipe.members), recipe
    if not args.members:
        raise UserError("name the members to vote with --members (or give a saved --recipe)")
    if len(set(args.members)) != len(args.members):
        raise UserError("a member is named twice in --members; give weights with --weights instead")
    return list(args.members), None


def primary_name(args: argparse.Namespace, recipe: Recipe) -> str:
    """How the submitted ensemble is labelled in tables: `vote:<rule>` for plain votes, else `recipe:<rule>`."""
    if args.recipe:
        return f"recipe:{recipe.rule}"
    return f"vote:{args.rule}" if args.rule in RULES else f"recipe:{args.rule}"


@cli_entry
def main(argv: list[str]) -> int:
    args = parse(argv)
    names, recipe = members_and_recipe(args)
    console_logging()
    settings = load_settings()
    registry = Registry(args.registry or settings.registry)
    entries = [member_entry(registry, settings, name) for name in names]  # imported members too
    check_compatible(entries)  # before any prediction work
    weights = parse_weights(args.weights, names)
    inputs = gather(names, entries, predict_members(names, registry, settings, tta=args.tta))
    config = member_config(registry, entries[0])
    dataset = load_dataset(config.data, settings.data_root)
    composite = composite_of(entries, config)
    n_classes = len(inputs.classes)
    if inputs.test_probs is None:
        raise UserError("no test predictions: the members' data config names no test list")
    compare = None
    if recipe is None:
        recipe, compare = choose_recipe(args.rule, inputs.by_name("val"), inputs.val_labels, n_classes,
                                  dict(zip(names, weights.tolist())), composite.to_dict() if composite else None)
    primary = primary_name(args, recipe)

    kinds = {name: "member" for name in names}
    val_preds = {name: inputs.val_probs[i].argmax(1) for i, name in enumerate(names)}
    for rule, fn in RULES.items():
        val_preds[f"vote:{rule}"] = fn(inputs.val_probs, weights)
        kinds[f"vote:{rule}"] = "ensemble"
    val_labels_primary, val_probs_primary = apply(recipe, inputs.by_name("val"))
    val_preds[primary] = val_labels_primary
    kinds[primary] = "ensemble"

    out = Path(args.out or settings.output_root / "submissions" / f"{args.name}.csv")
    test_pred = apply(recipe, inputs.by_name("test"))[0]
    frame = submission.build(inputs.test_ids, test_pred, dataset.test_info)
    submission.write(frame, out, n_classes, dataset.test_info, overwrite=args.overwrite)
    recipe_path = recipe.to_yaml(out.with_name(out.stem + ".recipe.yaml"), write_text=atomic.write_text)
    truth = test_labels(dataset.test_labels, inputs.test_ids)
    test_rows = None
    if truth is not None:
        test_preds = {name: inputs.test_probs[i].argmax(1) for i, name in enumerate(names)}
        test_preds.update({f"vote:{rule}": fn(inputs.test_probs, weights) for rule, fn in RULES.items()})
        test_preds[primary] = test_pred
        test_rows = LabelledTest(truth, test_preds)

    report_dir = Path(args.report or settings.output_root / "reports" / args.name)
    weights_text = ", ".join(f"{n}={w:.3g}" for n, w in recipe.members.items())
    votes = {name: Vote(pred) for name, pred in val_preds.items() if kinds[name] == "ensemble"}
    votes[primary].probs = val_probs_primary  # ranks the gallery's mistakes
    summary = [f"Submission: `{out}` (rule `{recipe.rule}`, weights {weights_text}); recipe: `{recipe_path}`"]
    if recipe.note:
        summary.append(f"Why this recipe: {recipe.note}")
    result = build_report(ReportInputs(
        title=f"Ensemble report: {args.name}", classes=inputs.classes, y_val=inputs.val_labels,
        members=inputs.by_name("val"), ensembles=votes, primary=primary, recipe=recipe,
        val_paths=val_image_paths(dataset.train, inputs.val_ids),
        run_dirs={e["name"]: run_folder(registry, e) for e in entries}, composite=composite, test=test_rows,
        summary=summary, compare=compare), report_dir)
    wandb_run = log_to_wandb(args.wandb, settings.output_root, ensemble_log(
        args.name, entries, config, settings.wandb_entity, result, inputs.val_labels, val_preds[primary],
        inputs.classes, out))

    print_table("Validation (macro F1 is the metric; in-sample for fitted rules):", result.val_table)
    if args.compare:
        print_table("Honest comparison (cross-fitted on validation; gain vs the best member, 95% paired "
                    "bootstrap CI):", result.compare_table)
        print_gain_verdict(result.compare_table)
    print_table("Test rows of the submission (true labels known for the demo data):", result.test_table)
    print(f"\nsubmission: {out}  (rule {recipe.rule}, weights {weights_text})")
    print(f"recipe:     {recipe_path}")
    if recipe.note:
        print(f"why:        {recipe.note}")
    if wandb_run is not None:
        print(f"wandb:      {wandb_run}")
    print(f"report:     {result.html}")
    return 0


def print_gain_verdict(table: pd.DataFrame | None) -> None:
    """Say plainly whether any ensemble beat the best member on rows it was not fitted on."""
    if table is None:
        return
    ensembles = table[table["kind"] == "ensemble"].dropna(subset=["f1_macro_honest"])
    if ensembles.empty:
        return
    top = ensembles.loc[ensembles["f1_macro_honest"].idxmax()]
    verdict = ("the interval excludes zero: the ensemble really helps" if bool(top["excludes_zero"]) and top["gain"] > 0
               else "the interval includes zero: no evidence the ensemble beats its best member"
               if not bool(top["excludes_zero"]) else "the interval excludes zero: the ensemble is WORSE")
    print(f"\nbest honest rule: {top['method']} (macro F1 {top['f1_macro_honest']:.4f}); gain vs best member "
          f"{top['gain']:+.4f} [{top['ci_low']:+.4f}, {top['ci_high']:+.4f}]: {verdict}")


if __name__ == "__main__":
    raise SystemExit(main())
