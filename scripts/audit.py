"""Find the likely mislabelled training images from fold groups' out-of-fold predictions (confident learning).

    python -m scripts.audit --groups mask-r18-f mask-cnx-f [--rule soft] [--top 50] --name audit-1

Writes audits/NAME/: suspects.csv (worst first), review.png and audit.html (each suspect with its given
and suggested label and every unit's vote), noise.csv and confident_joint.csv (the estimated noise per
class), and corrections.csv (id,action,label; the top N pre-filled as relabel) for a person to edit and
name in a member config as data.corrections. Holdout members are refused: audit fold groups.
"""
from __future__ import annotations

import argparse

from core.cli import add_registry
from core.console import console_logging
from core.errors import cli_entry
from core.settings import load_settings
from jobs.choices import AUDIT_RULES


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.audit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", nargs="+", default=[], metavar="PREFIX",
                        help="fold groups by member-name prefix, e.g. mask-r18-f")
    parser.add_argument("--members", nargs="+", default=[], help="fold groups as quoted glob patterns, e.g. 'a-f*'")
    parser.add_argument("--rule", default="soft", choices=AUDIT_RULES, help="how the units' probabilities are combined")
    parser.add_argument("--name", default="audit", help="the audit's folder name under audits/")
    parser.add_argument("--top", type=int, default=50, help="suspects pre-filled in corrections.csv (default 50)")
    parser.add_argument("--tta", default="none", help="test-time augmentation of missing predictions (as in vote)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing audit folder")
    add_registry(parser)
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str]) -> int:
    args = parse(argv)
    # lazy: the job imports cleanlab, scikit-learn, pandas and matplotlib; --help must not wait for them
    from jobs.audit import AuditRequest, audit
    console_logging()
    result = audit(AuditRequest(args.groups, args.members, args.rule, args.name, args.top, args.overwrite, args.tta,
                                args.registry), load_settings())
    for line in result.lines:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
