"""Vote registered members into a submission, and write the report.

    python -m scripts.vote --members a b c [--weights a=2 b=1] [--rule soft|hard|...|best] [--compare]
                           [--out submissions/NAME.csv] [--report reports/NAME] [--overwrite]
                           [--wandb disabled|offline|online]
    python -m scripts.vote --recipe submissions/NAME.recipe.yaml --name NAME2   # regenerate exactly
    python -m scripts.vote --members 'mask-r18-f*' 'mask-cnx-f*' --rule stack+f1w --compare   # fold groups
    python -m scripts.vote --members mask-r18 age-r34 --weights age-r34:age=2 --compare   # a task member (data.task)

Members and weights are named, never positional. A glob pattern (quoted) or a --groups prefix names a
fold group: one architecture trained on every fold of one split, voting as one member whose validation
predictions are its out-of-fold predictions and whose test predictions are its fold models' mean. One member alone is also a valid "ensemble".
Every vote saves its recipe (members, weights, temperatures, rule) next to the submission.
"""
from __future__ import annotations

import argparse

from core.cli import add_registry
from core.console import console_logging
from core.errors import cli_entry
from core.settings import load_settings
from core.wandb_mode import MODES
from jobs.choices import rule_names


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.vote", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", nargs="+", help="member names from the registry, or quoted glob patterns "
                                                     "that name fold groups, e.g. 'mask-r18-f*' (or give --recipe)")
    parser.add_argument("--groups", nargs="+", default=[], metavar="PREFIX",
                        help="fold groups by member-name prefix; each votes as one member named PREFIX*")
    parser.add_argument("--recipe", help="a saved recipe YAML: regenerate its ensemble exactly")
    parser.add_argument("--weights", nargs="*", default=[], help="member=weight pairs (others weigh 1); with task members, member:task=weight weighs "
                             "one task (e.g. age-r34:age=2)")
    parser.add_argument("--rule", choices=rule_names(), default="soft",
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
    parser.add_argument("--budget-ms", type=float, metavar="N",
                        help="with --rule best: the best honest ensemble whose members' measured inference cost "
                             "(ms per image, on the device that measured them) fits N")
    add_registry(parser)
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str]) -> int:
    args = parse(argv)
    # lazy: the job imports scikit-learn, pandas and matplotlib; --help must not wait for them
    from jobs.vote import VoteRequest, print_vote, vote
    request = VoteRequest(members=args.members, groups=args.groups, recipe=args.recipe, weights=args.weights, rule=args.rule,
                          compare=args.compare, name=args.name, out=args.out, report=args.report,
                          overwrite=args.overwrite, wandb=args.wandb, tta=args.tta, registry=args.registry,
                          budget_ms=args.budget_ms)
    console_logging()
    print_vote(vote(request, load_settings()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
