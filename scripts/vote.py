"""Vote registered members into a submission, and write the report.

    python -m scripts.vote --members a b c [--weights a=2 b=1] [--rule soft|hard]
                           [--out submissions/NAME.csv] [--report reports/NAME] [--overwrite]
                           [--wandb disabled|offline|online]

Members and weights are named, never positional. One member alone is also a valid "ensemble".
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import UserError, cli_entry
from core.registry import Registry
from core.settings import load_settings
from ensemble import submission
from ensemble.inputs import gather, parse_weights
from ensemble.recipe import Recipe, apply
from ensemble.report import LabelledTest, ReportInputs, Vote, build_report
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
    parser.add_argument("--members", nargs="+", required=True, help="member names from the registry")
    parser.add_argument("--weights", nargs="*", default=[], help="member=weight pairs (others weigh 1)")
    parser.add_argument("--rule", choices=sorted(RULES), default="soft", help="rule used for the submission")
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


@cli_entry
def main(argv: list[str]) -> int:
    args = parse(argv)
    if len(set(args.members)) != len(args.members):
        raise UserError("a member is named twice in --members; give weights with --weights instead")
    console_logging()
    settings = load_settings()
    registry = Registry(args.registry or settings.registry)
    entries = [member_entry(registry, settings, name) for name in args.members]  # imported members too
    weights = parse_weights(args.weights, args.members)
    inputs = gather(args.members, entries, predict_members(args.members, registry, settings, tta=args.tta))
    config = member_config(registry, entries[0])
    dataset = load_dataset(config.data, settings.data_root)
    composite = composite_of(entries, config)
    n_classes = len(inputs.classes)

    kinds = {name: "member" for name in args.members}
    val_preds = {name: inputs.val_probs[i].argmax(1) for i, name in enumerate(args.members)}
    for rule, fn in RULES.items():
        val_preds[f"vote:{rule}"] = fn(inputs.val_probs, weights)
        kinds[f"vote:{rule}"] = "ensemble"

    out = Path(args.out or settings.output_root / "submissions" / f"{args.name}.csv")
    if inputs.test_probs is None:
        raise UserError("no test predictions: the members' data config names no test list")
    test_pred = RULES[args.rule](inputs.test_probs, weights)
    frame = submission.build(inputs.test_ids, test_pred, dataset.test_info)
    submission.write(frame, out, n_classes, dataset.test_info, overwrite=args.overwrite)
    truth = test_labels(dataset.test_labels, inputs.test_ids)
    test_rows = None
    if truth is not None:
        test_preds = {name: inputs.test_probs[i].argmax(1) for i, name in enumerate(args.members)}
        test_preds.update({f"vote:{rule}": fn(inputs.test_probs, weights) for rule, fn in RULES.items()})
        test_rows = LabelledTest(truth, test_preds)

    report_dir = Path(args.report or settings.output_root / "reports" / args.name)
    weights_text = ", ".join(f"{n}={w:g}" for n, w in zip(args.members, weights))
    primary = f"vote:{args.rule}"
    recipe = Recipe(args.rule, dict(zip(args.members, weights.tolist())))
    votes = {name: Vote(pred) for name, pred in val_preds.items() if kinds[name] == "ensemble"}
    votes[primary].probs = apply(recipe, inputs.by_name("val"))[1]  # ranks the gallery's mistakes
    result = build_report(ReportInputs(
        title=f"Ensemble report: {args.name}", classes=inputs.classes, y_val=inputs.val_labels,
        members=inputs.by_name("val"), ensembles=votes, primary=primary, recipe=recipe,
        val_paths=val_image_paths(dataset.train, inputs.val_ids),
        run_dirs={e["name"]: run_folder(registry, e) for e in entries}, composite=composite, test=test_rows,
        summary=[f"Submission: `{out}` (rule `{args.rule}`, weights {weights_text})"]), report_dir)
    val_table, test_table, report = result.val_table, result.test_table, result.html
    wandb_run = log_to_wandb(args.wandb, settings.output_root, ensemble_log(
        args.name, entries, config, settings.wandb_entity, result, inputs.val_labels, val_preds[primary],
        inputs.classes, out))

    print("\nValidation (macro F1 is the metric):")
    print(val_table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if test_table is not None:
        print("\nTest rows of the submission (true labels known for the demo data):")
        print(test_table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\nsubmission: {out}  (rule {args.rule}, weights {weights_text})")
    if wandb_run is not None:
        print(f"wandb:      {wandb_run}")
    print(f"report:     {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
