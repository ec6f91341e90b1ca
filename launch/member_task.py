"""One member, start to finish, inside a Ray worker: train (or resume) and predict, in a process of its own.

The member runs `python -m scripts.train --predict` as a person could, so it goes through the normal
training path (run folder, checkpoints, early stopping, wandb, registry entry) in its own process: a
crash or an out-of-memory error cannot take the other members down, and the device's memory is freed
when the process exits. `--predict` then fills its val and test predictions on the same device in that
process (the predict command's job: one interpreter importing torch and timm instead of two), so the
plan's vote is instant once the last member finishes. A member found already registered only predicts
(`python -m scripts.predict --members NAME`).

The task holds `<member>.lock` (an OS lock) and hands the locked file to its children: if the driver is
SIGKILLed, Ray kills this worker, the child gets SIGTERM from the kernel (PR_SET_PDEATHSIG), saves `last`
and exits, and only then is the lock free, so a rerun waits for it instead of training the member twice.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.registry import Registry
from launch.runs import incomplete_run, newest_run, registered_hash
from launch.state import PlanFolder, read_state, update_state

POLL_S = 1.0
STOP_GRACE_S = 120  # a stopped child saves `last`; this is how long it gets


@dataclass
class MemberJob:
    name: str
    config_hash: str
    folder: PlanFolder
    repo: Path           # where scripts/ lives (the same path on every node)
    output_root: Path
    env: dict            # VOTE_* settings and thread counts for the children
    attempt: int = 1


@dataclass
class LaunchResult:
    finished: dict[str, dict] = field(default_factory=dict)   # member → its final state
    failed: dict[str, dict] = field(default_factory=dict)     # after every retry


def last_error_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return "no log"
    lines = [line for line in lines if line]
    flagged = [line for line in lines if line.startswith("error:") or "Error" in line or "error" in line.split(":")[0]]
    return (flagged or lines or ["(empty log)"])[-1][:300]


def _die_with_parent() -> None:
    """Linux: the kernel sends SIGTERM to the child when this worker dies (driver SIGKILLed, node lost)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _child(cmd: list[str], job: MemberJob, lock_fd: int) -> int:
    env = os.environ | job.env
    with open(job.folder.log(job.name), "a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=job.repo, env=env, stdout=log, stderr=subprocess.STDOUT,
                                # the hook only calls prctl: no lock a thread of the worker could hold
                                pass_fds=(lock_fd,), preexec_fn=_die_with_parent)  # noqa: PLW1509
        try:
            while True:
                try:
                    return proc.wait(timeout=POLL_S)
                except subprocess.TimeoutExpired:
                    _note_run(job, proc)
                    _note_registered(job)
                    if job.folder.stop_request().exists():
                        raise StopRequested(job.name) from None
        except BaseException:  # a stop request, ray.cancel (KeyboardInterrupt) or anything else: stop the child
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise


class StopRequested(Exception):
    """The driver asked every member to stop (its stop-request file).

    Ray's own cancel raises KeyboardInterrupt in the worker, which Python cannot deliver where SIGINT is
    ignored (a process started in the background by a non-interactive shell, as CI and nohup do, passes
    that on to Ray's workers): the file on the plan's shared folder reaches the task on any node.
    """


_started: dict[str, float] = {}


def _note_run(job: MemberJob, proc) -> None:
    """Record the run folder once the training process has made it, so the table can read its epochs."""
    if read_state(job.folder, job.name).get("run"):
        return
    run = newest_run(job.output_root / "runs", job.name, _started.get(job.name, time.time()))
    if run is not None:
        update_state(job.folder, job.name, run=str(run))


def _note_registered(job: MemberJob) -> None:
    """Once the training process has registered the member, it is predicting: say so in the table."""
    if read_state(job.folder, job.name).get("state") != "running":
        return
    if Registry(job.output_root / "registry.yaml").exists(job.name):
        update_state(job.folder, job.name, state="predicting")


def _device() -> str:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"gpu {visible}" if visible else "cpu"


def _train_command(job: MemberJob, registry: Registry) -> tuple[list[str], str]:
    resume = incomplete_run(job.output_root / "runs", job.name, job.config_hash)
    if resume is not None:
        return [sys.executable, "-m", "scripts.train", "--resume", str(resume), "--predict"], "resumed"
    return [sys.executable, "-m", "scripts.train", "--config", str(job.folder.config(job.name)), "--predict"], "trained"


def _stoppable_child(cmd: list[str], job: MemberJob, lock_fd: int) -> int:
    """`_child`, and a cancel (Ctrl-C/SIGTERM to the driver) recorded as `stopped` whichever child it stopped:
    the driver waits for that record before it leaves (launch/driver._await_stopped)."""
    try:
        return _child(cmd, job, lock_fd)
    except BaseException:
        update_state(job.folder, job.name, state="stopped", finished=time.time())
        raise


def run_member(job: MemberJob) -> dict:
    """Train and predict one member; returns its final state (never raises for a member's own failure)."""
    registry = Registry(job.output_root / "registry.yaml")
    with open(job.folder.lock(job.name), "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # waits for a child left by a killed driver
        started = time.time()
        _started[job.name] = started
        base = {"attempt": job.attempt, "device": _device(), "node": socket.gethostname(), "started": started,
                "finished": None, "error": None, "log": str(job.folder.log(job.name))}
        if registry.exists(job.name) and registered_hash(registry, registry.get(job.name)) == job.config_hash:
            # a previous run's orphan finished training it: only the predictions may be missing
            update_state(job.folder, job.name, state="predicting", action="found registered", **base)
            cmd = [sys.executable, "-m", "scripts.predict", "--members", job.name]
        else:
            cmd, action = _train_command(job, registry)
            update_state(job.folder, job.name, state="running", action=action, run=None, **base)
        code = _stoppable_child(cmd, job, lock.fileno())
        _note_run(job, None)
        if code != 0:
            # a member that registered and then failed failed while predicting
            step = "predict: " if registry.exists(job.name) else ""
            return update_state(job.folder, job.name, state="failed", finished=time.time(), exit_code=code,
                                error=step + last_error_line(job.folder.log(job.name)))
        return update_state(job.folder, job.name, state="done", finished=time.time(), exit_code=0)
