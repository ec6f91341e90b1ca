"""The plan jobs: train a plan's members as Ray tasks, show their state, vote them as fold groups.

Everything that can be refused is refused before any task starts: the plan and every derived config
(launch/plan_file.py), members registered under a plan name with another config, and the data itself
(the split file, duplicate groups, bad-image scan and decode cache are made here once, by the same
function training calls, so N members do not queue on the same locks and a data problem takes no GPU).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import yaml

from core import atomic, files
from core.errors import UserError
from core.registry import Registry
from core.settings import REPO_ROOT, Settings
from jobs.train import prepare_data
from jobs.vote import VoteRequest, VoteResult, vote
from launch.member_task import LaunchResult, MemberJob
from launch.plan_file import Plan, PlannedMember, load_plan
from launch.runs import registered_hash
from launch.state import FINISHED, PlanFolder, read_state, render, table, update_state

# Settings a member's processes take from the driver's environment rather than the Ray worker's.
PASSED_ON = ("VOTE_LOCAL_CONFIG", "WANDB_MODE", "WANDB_DIR", "HF_HUB_OFFLINE", "HF_HOME", "TQDM_DISABLE")


@dataclass
class PlanRequest:
    plan: str                        # the plan YAML file
    address: str | None = None       # run: join a Ray cluster (auto or HOST:PORT); default a local session
    overwrite: bool = False          # vote: replace an existing submission


@dataclass
class PlanStatus:
    text: str                        # the plan's table, read from its state files


@dataclass
class PlanRunResult:
    plan: Plan
    skipped: list[str]                       # registered before this run with the same derived config
    launched: LaunchResult = field(default_factory=LaunchResult)
    vote: VoteResult | None = None

    @property
    def missing(self) -> list[str]:
        return [m.name for m in self.plan.members if m.name in self.launched.failed]


def _registered(plan: Plan, registry: Registry) -> list[str]:
    """Members already registered with the same derived config; refuse one registered with another config."""
    entries = {entry.name: entry for entry in registry.members()} if registry.path.exists() else {}
    done = []
    for member in plan.members:
        entry = entries.get(member.name)
        if entry is None:
            continue
        if registered_hash(registry, entry) != member.config_hash:
            raise UserError(f"plan {plan.path}: member {member.name} is registered with a different config than the "
                            f"plan derives; remove it (python -m scripts.registry remove {member.name}) or change "
                            f"the unit's prefix")
        done.append(member.name)
    return done


def shared_data_work(members: list[PlannedMember], settings: Settings) -> None:
    """The split file, duplicate groups, bad-image scan and decode cache, once per distinct data setting."""
    seen = set()
    for member in members:
        data = dict(member.config["data"]) | {"split": dict(member.config["data"]["split"]) | {"fold": 0}}
        key = yaml.safe_dump(data, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        print(f"shared data work for {member.name}'s data (split {data['split']['name']}) ...", flush=True)
        prepare_data(member.member_config, settings)


def _jobs(plan: Plan, todo: list[PlannedMember], settings: Settings, folder: PlanFolder) -> list[MemberJob]:
    threads = str(plan.spec.resources.threads)
    env = {"VOTE_OUTPUT_ROOT": str(settings.output_root.resolve()), "VOTE_DATA_ROOT": str(settings.data_root.resolve()),
           "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    if settings.wandb_entity:
        env["VOTE_WANDB_ENTITY"] = settings.wandb_entity
    env |= {key: os.environ[key] for key in PASSED_ON if key in os.environ}  # the driver's, not the cluster's
    jobs = []
    for member in todo:
        atomic.write_text(folder.config(member.name), files.dump_yaml(member.config, sort_keys=False))
        jobs.append(MemberJob(member.name, member.config_hash, folder, REPO_ROOT, settings.output_root.resolve(), env))
    return jobs


def _live(folder: PlanFolder, names: list[str]):
    """Print the table whenever a member's state, epoch or score moves (not for the clock alone)."""
    last = [""]

    def tick() -> None:
        frame = table(folder, names)
        key = frame.drop(columns="elapsed").to_string()
        if key != last[0]:
            print(render(frame) + "\n", flush=True)
            last[0] = key
    return tick


def run_plan(req: PlanRequest, settings: Settings) -> PlanRunResult:
    plan = load_plan(req.plan)
    registry = Registry(settings.registry)
    skipped = _registered(plan, registry)
    todo = [m for m in plan.members if m.name not in skipped]
    result = PlanRunResult(plan, skipped)
    folder = PlanFolder.of(settings.output_root, plan.name)
    for name in skipped:  # registered, perhaps by a run whose driver died before it could say so
        if folder.state(name).is_file() and read_state(folder, name).get("state") not in FINISHED:
            update_state(folder, name, state="skipped")
    if not todo:
        return result
    folder.root.mkdir(parents=True, exist_ok=True)
    shared_data_work(todo, settings)
    jobs = _jobs(plan, todo, settings, folder)
    from launch.driver import (  # Ray loads only for `run`
        Slots,
        check_shared_storage,
        connected,
        launch,
    )

    r = plan.spec.resources
    with connected(req.address):
        if req.address:
            check_shared_storage(folder.nodes())
        try:
            result.launched = launch(jobs, Slots(r.cpus, r.gpus, plan.spec.retries),
                                     _live(folder, [m.name for m in plan.members]))
        except KeyboardInterrupt:
            print(f"stopped: each running member was sent SIGTERM and saved `last`; continue with: "
                  f"python -m scripts.plan run {plan.path}", file=sys.stderr, flush=True)
            raise
    return result


def plan_status(req: PlanRequest, settings: Settings) -> PlanStatus:
    plan = load_plan(req.plan)
    return PlanStatus(render(table(PlanFolder.of(settings.output_root, plan.name), [m.name for m in plan.members])))


def vote_plan(req: PlanRequest, settings: Settings) -> VoteResult:
    """The plan's units as fold groups (one unit per prefix), with the plan's rule."""
    plan = load_plan(req.plan)
    missing = [m.name for m in plan.members if not Registry(settings.registry).exists(m.name)]
    if missing:
        raise UserError(f"plan {plan.path}: {len(missing)} member(s) not registered yet ({', '.join(missing)}); "
                        f"run python -m scripts.plan run {plan.path} first")
    request = VoteRequest(groups=[u.prefix for u in plan.spec.units], rule=plan.spec.vote.rule,
                          compare=plan.spec.vote.compare, name=plan.name, overwrite=req.overwrite)
    return vote(request, settings)


def summary_lines(result: PlanRunResult) -> list[str]:
    """The final summary: what was skipped, trained, resumed, failed (with log and last error), and how to rerun."""
    plan, launched = result.plan, result.launched
    head = (f"plan {plan.name}: {len(plan.members)} member(s); {len(result.skipped)} already registered, "
            f"{len(launched.finished)} finished now, {len(launched.failed)} failed")
    lines = [head]
    for name, state in launched.finished.items():
        lines.append(f"  {name}: {state.get('action', 'trained')} on {state.get('device', '?')}")
    for name, state in launched.failed.items():
        lines.append(f"  {name}: FAILED after {state.get('attempt', 1)} attempt(s): {state.get('error')} "
                     f"(log: {state.get('log')})")
    if result.missing:
        lines.append(f"missing: {', '.join(result.missing)}; fix the cause and rerun: "
                     f"python -m scripts.plan run {plan.path} (registered members are skipped)")
    return lines


__all__ = ["PlanRequest", "PlanRunResult", "PlanStatus", "plan_status", "run_plan", "summary_lines", "vote_plan"]
