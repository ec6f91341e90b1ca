"""The driver: members as Ray core tasks, a `ray.wait` loop, retries, a live table, and a clean stop.

Ray does the scheduling (no home-made scheduler): each member asks for `cpus`/`gpus` (a fraction packs
several small members on one big GPU), Ray starts it when a slot is free and sets its
CUDA_VISIBLE_DEVICES. `max_calls=1` gives every member a fresh worker process, so nothing lingers
between members. A task that dies with its node is retried by Ray (`max_retries`), and resumes from
its `last` checkpoint; a member whose own process fails is resubmitted by the driver up to `retries`.
"""
from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from core import atomic
from core.errors import UserError
from launch.member_task import LaunchResult, MemberJob, run_member
from launch.state import read_state, update_state

WAIT_S = 0.5        # how often the live table is refreshed, and how soon Ctrl-C/SIGTERM is acted on (the
                    # signal's handler runs when ray.wait returns to Python)
MARKER_WAIT_S = 120  # a node that cannot run a one-line task in this time is reported
STOP_WAIT_S = 180    # a stopped member saves `last` (its grace is member_task.STOP_GRACE_S) and records its state
ACTIVE = ("running", "predicting")  # a member in one of these states has a live worker


@dataclass
class Slots:
    cpus: float
    gpus: float
    retries: int


@contextmanager
def connected(address: str | None) -> Iterator[None]:
    """Join `address` (auto | HOST:PORT), reuse a running Ray session, or start a local one (and stop it after)."""
    if ray.is_initialized():
        yield
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise UserError(f"cannot join the Ray cluster at {address}: {str(err).splitlines()[0]}") from err
    try:
        yield
    finally:
        ray.shutdown()


def _write_marker(path: str, token: str) -> str:
    import socket
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(token, encoding="utf-8")
    return socket.gethostname()


def check_shared_storage(nodes_folder: Path) -> None:
    """A task on every alive node writes a marker under the output root; the driver must read each one."""
    token = uuid.uuid4().hex
    marker = ray.remote(num_cpus=0)(_write_marker)
    refs = {}
    for node in ray.nodes():
        if node.get("Alive"):
            strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            path = nodes_folder / f"{node['NodeID']}.marker"
            refs[node["NodeManagerAddress"]] = (path, marker.options(scheduling_strategy=strategy)
                                                .remote(str(path), token))
    for address, (path, ref) in refs.items():
        try:
            ray.get(ref, timeout=MARKER_WAIT_S)
            seen = path.read_text(encoding="utf-8") if path.is_file() else None
        except (ray.exceptions.RayError, OSError):
            seen = None
        if seen != token:
            raise UserError(f"node {address} cannot write where this driver reads ({nodes_folder.parent.parent.parent}):"
                            f" the output root must be on storage every node sees (set VOTE_OUTPUT_ROOT)")
        path.unlink()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(_signum, _frame):
        raise KeyboardInterrupt
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: Ctrl-C still works
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _submit(job: MemberJob, slots: Slots):
    # The worker imports launch/ from the project folder, wherever (and by whom) the cluster was started.
    env = {"env_vars": {"PYTHONPATH": str(job.repo)}}
    task = ray.remote(max_calls=1)(run_member).options(num_cpus=slots.cpus, num_gpus=slots.gpus, runtime_env=env,
                                                       max_retries=slots.retries, name=f"member:{job.name}")
    return task.remote(job)


def _stop(running: dict) -> None:
    """Ask every task to stop: each sends SIGTERM to its member, which saves `last`.

    Two channels: the stop-request file every task polls, and Ray's cancel (KeyboardInterrupt in the worker;
    it also drops tasks not started yet)."""
    for folder in {job.folder for job in running.values()}:
        atomic.write_text(folder.stop_request(), f"{time.time()}\n")
    for ref in running:
        ray.cancel(ref)
    if running:
        ray.wait(list(running), num_returns=len(running), timeout=STOP_WAIT_S)
        _await_stopped(list(running.values()))


def _await_stopped(jobs: list[MemberJob]) -> None:
    """Wait until each started member's worker has recorded how it ended.

    A cancelled task's ref can resolve while its worker is still stopping the member and writing its state;
    a driver that left now would end the Ray job, and Ray would kill that worker mid-write, leaving the
    member shown `running`. The state files are on storage every node sees, so this works on a cluster too.
    """
    deadline = time.monotonic() + STOP_WAIT_S
    busy = [job for job in jobs if read_state(job.folder, job.name).get("state") in ACTIVE]
    while busy and time.monotonic() < deadline:
        time.sleep(0.5)  # polling a file another process writes; no event to wait on across nodes
        busy = [job for job in busy if read_state(job.folder, job.name).get("state") in ACTIVE]


def launch(jobs: list[MemberJob], slots: Slots, on_tick: Callable[[], None]) -> LaunchResult:
    """Run every job; return what finished and what failed after its retries. Ctrl-C/SIGTERM stops all cleanly."""
    result = LaunchResult()
    for folder in {job.folder for job in jobs}:
        folder.stop_request().unlink(missing_ok=True)  # a previous run's stop must not stop this one
    for job in jobs:
        update_state(job.folder, job.name, state="queued", attempt=job.attempt, error=None, started=None,
                     finished=None, device="", run=None)
    running = {_submit(job, slots): job for job in jobs}
    with _sigterm_as_interrupt():
        try:
            while running:
                done, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_S)
                for ref in done:
                    job = running.pop(ref)
                    state = _outcome(ref, job)
                    if state["state"] == "failed" and job.attempt <= slots.retries:
                        retry = replace(job, attempt=job.attempt + 1)
                        running[_submit(retry, slots)] = retry
                    elif state["state"] == "failed":
                        result.failed[job.name] = state
                    else:
                        result.finished[job.name] = state
                on_tick()
        except KeyboardInterrupt:
            _stop(running)
            on_tick()
            raise
    return result


def _outcome(ref, job: MemberJob) -> dict:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as err:  # the worker itself died (node lost, killed) after Ray's retries
        line = str(err).strip().splitlines()[0][:300]
        return update_state(job.folder, job.name, state="failed", finished=time.time(), error=line)
