"""Write the report that decides which members to keep: scikit-learn reports, confusion matrices,
learning curves, disagreement heatmaps, the honest member-versus-ensemble table and a gallery
of the ensemble's mistakes, as one self-contained report.html (and report.md beside it).

    python -m scripts.report --members a b c [--recipe recipe.yaml | --rule soft --weights a=2]
                             [--name NAME] [--report reports/NAME] [--overwrite] [--wandb disabled|offline|online]

The ensemble is a recipe file (e.g. one written by a selection step) or a rule with named weights.
Members not in the recipe are still scored, so you can see what leaving them out costs.
"""
from __future__ import annotations

import argparse

from core.cli import add_overwrite, add_registry
from core.console import console_logging
from core.errors import cli_entry
from core.settings import load_settings
from core.wandb_mode import MODES
from jobs.choices import REPORT_RULES


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", nargs="+", help="member names from the registry (default: the recipe's)")
    parser.add_argument("--recipe", help="recipe YAML (rule, members with weights, temperatures, composite)")
    parser.add_argument("--rule", choices=REPORT_RULES, help="voting rule when no --recipe is given (default soft)")
    parser.add_argument("--weights", nargs="*", default=[], help="member=weight pairs (others weigh 1)")
    parser.add_argument("--name", default="ensemble", help="names the default report folder and the wandb run")
    # --out is the old spelling: --out always names a file elsewhere, folders are --report.
    parser.add_argument("--report", "--out", dest="report",
                        help="report folder (default: reports/<name>); replaced whole with --overwrite")
    add_overwrite(parser, "report folder")
    parser.add_argument("--wandb", choices=MODES, default="disabled",
                        help="log the ensemble to wandb (online falls back to offline without a login)")
    parser.add_argument("--submission", help="a submission CSV to attach to the wandb artifact")
    parser.add_argument("--gallery", type=int, default=30, help="most misclassified images shown (default 30)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the gain's interval")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cross-fit folds and the bootstrap")
    parser.add_argument("--tta", nargs="?", const="flip", default="none", metavar="VIEWS",
                        help="test-time views, as for scripts.vote: flip, shift or flip,shift (alone: flip)")
    add_registry(parser)
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str]) -> int:
    args = parse(argv)
    # lazy: the job imports scikit-learn, pandas and matplotlib; --help must not wait for them
    from jobs.report import ReportRequest, print_tables, report_command
    console_logging()
    request = ReportRequest(
        members=args.members, recipe=args.recipe, rule=args.rule, weights=args.weights, name=args.name,
        report=args.report, overwrite=args.overwrite, wandb=args.wandb, submission=args.submission,
        gallery=args.gallery, n_boot=args.n_boot, seed=args.seed, tta=args.tta, registry=args.registry)
    result = report_command(request, load_settings())
    print_tables(result.report)
    if result.wandb_run is not None:
        print(f"wandb:  {result.wandb_run}")
    print(f"report: {result.report.html}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
