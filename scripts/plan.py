"""Train a plan's members (architectures × folds × seeds) in parallel as Ray tasks, show them, vote them.

    python -m scripts.plan run plans/mask-cv.yaml [--vote] [--address auto|HOST:PORT]
    python -m scripts.plan status plans/mask-cv.yaml
    python -m scripts.plan vote plans/mask-cv.yaml [--overwrite]

`run` validates the whole plan first, skips members already registered with the same derived config,
resumes `_incomplete` runs, and trains the rest, each in its own process (see README "K-fold: a plan").
Exit 0: every member registered; 1: some failed (listed, with logs); 2: a mistake in the plan or data;
130: stopped (Ctrl-C/SIGTERM: every member saved `last`; `run` again continues).
"""
from __future__ import annotations

import argparse

from core.errors import EXIT_OK, EXIT_PROBLEMS, cli_entry
from core.settings import load_settings


def parse(argv: list[str]) -> argparse.Namespace:
    top = argparse.ArgumentParser(prog="python -m scripts.plan", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True, metavar="{run,status,vote}")
    run = commands.add_parser("run", help="train every member of the plan that is not registered yet")
    run.add_argument("plan", help="plan YAML file")
    run.add_argument("--vote", action="store_true", help="vote the plan once every member is registered")
    run.add_argument("--address", help="join a Ray cluster: auto (the one `ray start` made here) or HOST:PORT; "
                                       "default: a Ray session on this machine only")
    status = commands.add_parser("status", help="the plan's table, read from its state files")
    status.add_argument("plan", help="plan YAML file")
    vote = commands.add_parser("vote", help="vote the plan's units as fold groups with the plan's rule")
    vote.add_argument("plan", help="plan YAML file")
    vote.add_argument("--overwrite", action="store_true", help="replace an existing submission")
    return top.parse_args(argv)


@cli_entry
def main(argv: list[str]) -> int:
    args = parse(argv)
    # lazy: the jobs import torch, timm, scikit-learn and pandas; --help must not wait for them
    from jobs.plan import PlanRequest, plan_status, run_plan, summary_lines, vote_plan
    from jobs.vote import print_vote
    settings = load_settings()
    if args.command == "status":
        print(plan_status(PlanRequest(args.plan), settings).text)
        return EXIT_OK
    if args.command == "vote":
        print_vote(vote_plan(PlanRequest(args.plan, overwrite=args.overwrite), settings))
        return EXIT_OK
    result = run_plan(PlanRequest(args.plan, address=args.address), settings)
    print("\n".join(summary_lines(result)))
    if result.missing:
        return EXIT_PROBLEMS
    if args.vote:
        print_vote(vote_plan(PlanRequest(args.plan, overwrite=True), settings))
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
