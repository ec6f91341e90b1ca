"""Speed of the voting rules and of the full honest comparison, next to naive versions.

Random but realistic data: 10 members x 12,600 rows x 18 classes, each member's
row a Dirichlet draw concentrated on the class it "believes"; members differ in
skill and sharpness (accuracy about 0.38-0.83) and their errors are correlated
through shared hard rows and a shared wrong class per row.

    .venv/bin/python benchmarks/vote_speed.py [--repeats 5] [--rows 12600] [--skip-naive] [--before REF]

Each timing is the best of --repeats runs, both wall clock and CPU time of this
process (on a shared machine the CPU figure is the steadier one); the naive
versions run once because they are slow. Targets: each rule < 50 ms,
compare (temperatures, selection, weight search, stacking, decision weights, 5-fold cross-fit,
1000-resample bootstrap) < 1 s.

`--before REF` (default: the commit before issue 24's compare speed-up) also runs the full comparison
with that commit's `ensemble/` and `core/` (taken with `git archive`, run in a child process on the same
data) and prints its CPU and wall time and every rule's honest macro F1 beside this checkout's.
`--before ''` skips it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Run as a script, Python puts benchmarks/ (not the repo root) on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.metrics import f1_score  # noqa: E402

from ensemble.calibration import fit_temperatures  # noqa: E402
from ensemble.compare import compare  # noqa: E402
from ensemble.composite import CompositeSpec  # noqa: E402
from ensemble.honest import paired_bootstrap_gain  # noqa: E402
from ensemble.selection import caruana_selection, fit_simplex_weights  # noqa: E402
from ensemble.stacking import fit_stacker, stacker_scores  # noqa: E402
from ensemble.voting import geometric_vote, hard_vote, logit_vote, soft_vote  # noqa: E402

BEFORE = "290ef13"  # main before issue 24's compare speed-up (hill climbing, decision weights, curve)
REPO = Path(__file__).resolve().parents[1]
MASK = {"tasks": [{"name": "mask", "size": 3}, {"name": "gender", "size": 2}, {"name": "age", "size": 3}]}


def make_members(
    n_members: int, n_rows: int, n_classes: int, seed: int = 0
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_rows)
    hard_row = rng.random(n_rows) < 0.25  # rows that confuse every member
    confuser = (y + rng.integers(1, n_classes, n_rows)) % n_classes  # the same wrong class for all
    members = {}
    for m in range(n_members):
        acc = 0.60 + 0.025 * m
        right = rng.random(n_rows) < np.where(hard_row, acc - 0.3, acc + 0.1)
        wrong = np.where(rng.random(n_rows) < 0.6, confuser, rng.integers(0, n_classes, n_rows))
        believed = np.where(right, y, wrong)
        alpha = np.full((n_rows, n_classes), 0.3)
        alpha[np.arange(n_rows), believed] += 2.0 + 0.6 * m  # later members are sharper
        gamma = rng.standard_gamma(alpha)
        members[f"net{m:02d}"] = gamma / gamma.sum(axis=1, keepdims=True)
    return members, y


@dataclass
class Case:
    name: str
    ours: Callable[[], object]
    target: str = ""
    naive_name: str = ""
    naive: Callable[[], object] | None = None


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best wall-clock and best CPU milliseconds over `repeats` runs.

    CPU time is reported too because on a shared machine other processes
    inflate wall-clock time; CPU time counts only this process (all threads).
    """
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls) * 1000, min(cpus) * 1000


def naive_hard_vote(probs: np.ndarray) -> np.ndarray:
    preds = probs.argmax(axis=2)
    return np.array([np.argmax(np.bincount(preds[:, i], minlength=probs.shape[2])) for i in range(probs.shape[1])])


def naive_bootstrap(y: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int, labels: list[int]) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    gains = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        fa = f1_score(y[idx], a[idx], average="macro", labels=labels, zero_division=0)
        fb = f1_score(y[idx], b[idx], average="macro", labels=labels, zero_division=0)
        gains.append(fa - fb)
    return tuple(np.quantile(gains, [0.025, 0.975]))


def naive_caruana(probs: np.ndarray, y: np.ndarray, n_iterations: int, labels: list[int]) -> np.ndarray:
    total, counts = np.zeros(probs.shape[1:]), np.zeros(len(probs), int)
    for _ in range(n_iterations):
        scores = [
            f1_score(y, (total + p).argmax(axis=1), average="macro", labels=labels, zero_division=0) for p in probs
        ]
        best = int(np.argmax(scores))
        total += probs[best]
        counts[best] += 1
    return counts


def old_stacker(probs: np.ndarray, y: np.ndarray, c: float = 0.03):
    """The stacker before issue 24: scikit-learn's full multinomial matrix on log p clipped at 1e-12.

    Only its final fit (at the C its inner search chose on this data, 0.03), so its time is a lower bound.
    """
    from sklearn.linear_model import LogisticRegression

    x = np.log(np.maximum(probs, 1e-12)).transpose(1, 0, 2).reshape(probs.shape[1], -1)
    return LogisticRegression(C=c, max_iter=300).fit(x, y), x


def stacker_honest(probs: np.ndarray, y: np.ndarray, names: list[str]) -> tuple[float, float]:
    """5-fold honest macro F1 of the old and the new stacker on the same folds: (before, after)."""
    import warnings

    fold = np.random.default_rng(0).permutation(len(y)) % 5
    before, after = np.empty(len(y), int), np.empty(len(y), int)
    for k in range(5):
        train, test = fold != k, fold == k
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, _ = old_stacker(probs[:, train], y[train])
        before[test] = model.predict(np.log(np.maximum(probs[:, test], 1e-12)).transpose(1, 0, 2).reshape(test.sum(), -1))
        after[test] = stacker_scores(fit_stacker(probs[:, train], y[train], names), probs[:, test])[0]
    return (f1_score(y, before, average="macro"), f1_score(y, after, average="macro"))


_CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from ensemble.compare import compare  # the old code, imported before the benchmark puts this checkout on the path
import importlib.util
spec = importlib.util.spec_from_file_location("vote_speed", sys.argv[2])
bench = sys.modules["vote_speed"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
members, y = bench.make_members(*map(int, sys.argv[3:6]))
composite = bench.MASK if int(sys.argv[5]) == 18 else None
wall, cpu = time.perf_counter(), time.process_time()
table = compare(members, y, int(sys.argv[5]), composite=composite).table
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                  "honest": dict(zip(table["method"], table["f1_macro_honest"])), "file": sys.modules["ensemble.compare"].__file__}))
"""


def compare_before(ref: str, n_members: int, n_rows: int, n_classes: int) -> dict:
    """The full comparison with `ref`'s ensemble/ and core/, in a child process: wall, cpu, honest F1s."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "ensemble", "core"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        out = subprocess.run([sys.executable, "-c", _CHILD, tmp, str(Path(__file__).resolve()), str(n_members),
                              str(n_rows), str(n_classes)], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def print_before_after(before: dict, after_wall: float, after_cpu: float, table, ref: str) -> None:
    print(f"\ncompare (full), one run each: before ({ref}) {before['wall']:.2f} s wall / {before['cpu']:.2f} s CPU; "
          f"now {after_wall / 1000:.2f} s wall / {after_cpu / 1000:.2f} s CPU (best of the runs above)")
    print(f"{'method':<20}  {'honest before':>13}  {'honest now':>10}  {'change':>8}")
    for method, now in zip(table["method"], table["f1_macro_honest"]):
        old = before["honest"].get(method, float("nan"))
        print(f"{method:<20}  {old:13.4f}  {now:10.4f}  {now - old:+8.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--rows", type=int, default=12_600)
    parser.add_argument("--classes", type=int, default=18)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-naive", action="store_true", help="skip the slow naive versions")
    parser.add_argument("--before", default=BEFORE, help="git ref whose compare to time beside this one ('' skips)")
    args = parser.parse_args(argv)

    members, y = make_members(args.members, args.rows, args.classes)
    names = sorted(members)
    probs = np.stack([members[n] for n in names])
    labels = list(range(args.classes))
    accs = [float((members[n].argmax(axis=1) == y).mean()) for n in names]
    print(
        f"data: {args.members} members x {args.rows} rows x {args.classes} classes; "
        f"member accuracy {min(accs):.3f}-{max(accs):.3f}; {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.2f}; best of {args.repeats}"
    )

    composite = CompositeSpec.from_dict(MASK) if args.classes == 18 else None
    soft_labels = soft_vote(probs)[0]
    member_labels = probs[int(np.argmax(accs))].argmax(axis=1)
    table_holder: dict[str, object] = {}

    def full_compare() -> None:
        table_holder["t"] = compare(members, y, args.classes, composite=MASK if composite else None).table

    cases = [
        Case("hard_vote", lambda: hard_vote(probs), "< 50 ms",
             "Python loop over rows, np.bincount per row", lambda: naive_hard_vote(probs)),
        Case("soft_vote", lambda: soft_vote(probs), "< 50 ms",
             "np.average + argmax (VotingClassifier's way)", lambda: np.average(probs, axis=0).argmax(axis=1)),
        Case("geometric_vote", lambda: geometric_vote(probs), "< 50 ms"),
        Case("logit_vote", lambda: logit_vote(probs), "< 50 ms"),
    ]  # fmt: skip
    if composite is not None:
        cases += [
            Case("per_task_vote hard", lambda: composite.per_task_vote(probs, rule="hard"), "< 50 ms"),
            Case("per_task_vote soft", lambda: composite.per_task_vote(probs, rule="soft"), "< 50 ms"),
        ]
    cases += [
        Case("fit_temperatures (10 members)", lambda: fit_temperatures(probs, y, names)),
        Case("fit_simplex_weights", lambda: fit_simplex_weights(probs, y, names)),
        Case("caruana_selection (50 iter)", lambda: caruana_selection(probs, y, names, n_iterations=50), "",
             "greedy loop, sklearn f1 per candidate", lambda: naive_caruana(probs, y, 50, labels)),
        Case("paired_bootstrap_gain (1000)",
             lambda: paired_bootstrap_gain(y, soft_labels, member_labels, 1000, 0, labels), "",
             "row resampling, sklearn f1 per resample",
             lambda: naive_bootstrap(y, soft_labels, member_labels, 1000, labels)),
        Case("fit_stacker", lambda: fit_stacker(probs, y, names), "",
             "before issue 24: sklearn full matrix, 1e-12 floor (final fit only)", lambda: old_stacker(probs, y)),
        Case("compare (full)", full_compare, "< 1 s"),
    ]  # fmt: skip

    print(
        f"\n{'operation':<30}  {'wall ms':>8}  {'cpu ms':>8}  {'target':>7}  "
        f"{'naive wall':>10}  {'naive cpu':>10}  {'cpu speed-up':>12}  naive version"
    )
    timings = {}
    for case in cases:
        repeats = min(args.repeats, 3) if case.name.startswith("compare") else args.repeats
        wall, cpu = best_of(case.ours, repeats)
        timings[case.name] = (wall, cpu)
        line = f"{case.name:<30}  {wall:8.1f}  {cpu:8.1f}  {case.target:>7}"
        if case.naive is not None and not args.skip_naive:
            naive_wall, naive_cpu = best_of(case.naive, 1)
            line += f"  {naive_wall:10.1f}  {naive_cpu:10.1f}  {naive_cpu / cpu:11.0f}x  {case.naive_name}"
        print(line, flush=True)

    if not args.skip_naive:
        before, after = stacker_honest(probs, y, names)
        print(f"\nstacker honest macro F1 (5-fold, same folds): before issue 24 {before:.4f}, now {after:.4f}")
    table = table_holder["t"]
    if args.before:
        before = compare_before(args.before, args.members, args.rows, args.classes)
        print_before_after(before, *timings["compare (full)"], table, args.before)
    print("\ncompare table:")
    print(table.drop(columns="kind").to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
