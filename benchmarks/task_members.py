"""Does a dedicated member for the hard task of a composite label help, honestly? Digits on CPU.

Digits read as a 2-task composite: class = high * 5 + rest, with `high` (digit >= 5, 2 classes) and
`rest` (digit mod 5, 5 classes), declared through `data.composite`. Full (10-class) members train at a
small input (12 px), where digits blur together; a dedicated `rest` task member (`data.task=rest`)
trains at 32 px. On the same validation rows (one split file for all) it compares, honestly:
  (a) the full members only (flat soft vote),
  (b) the same plus the task member, voted task by task (soft per task; stack per task),
  (c) the same plus a third FULL member at 32 px (is it the task, or just the bigger input?).
Honest = fixed rules in-sample, fitted rules cross-fitted on grouped folds; gains by the paired
cluster bootstrap against (a). It also counts rows where the product table's argmax differs from the
per-task argmax (the two soft re-encodings; zero up to ties, by construction).

    .venv/bin/python benchmarks/task_members.py [--epochs 2] [--small 12] [--big 32] [--out DIR] [--keep]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ensemble.composite import CompositeSpec
from ensemble.honest import paired_bootstrap_gains
from ensemble.metrics import macro_f1_many
from ensemble.task_compare import compare_tasks
from ensemble.task_vote import apply_tasks, fixed_recipe
from ensemble.voting import soft_vote

COMPOSITE = "{tasks: [{name: high, size: 2}, {name: rest, size: 5}]}"
SPEC = CompositeSpec.from_dict({"tasks": [{"name": "high", "size": 2}, {"name": "rest", "size": 5}]})
SPLIT = "digits-tasks-s42"


def run(module: str, *args: str, env: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", f"scripts.{module}", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"scripts.{module} {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def load_val(out: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(out / "cache" / "predictions" / name / "val.npz", allow_pickle=False) as z:
        return z["ids"].astype(str), z["labels"].astype(np.int64), z["probs"].astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--small", type=int, default=12)
    parser.add_argument("--big", type=int, default=32)
    parser.add_argument("--out")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="task-members-"))
    env = dict(os.environ, PYTHONPATH=str(REPO), VOTE_OUTPUT_ROOT=str(out), VOTE_DATA_ROOT=str(out / "data"),
               TQDM_DISABLE="1", WANDB_MODE="disabled", VOTE_LOCAL_CONFIG=str(out / "none.yaml"),
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    cfg = str(REPO / "configs" / "digits" / "resnet18.yaml")
    members = {"full-a": ("resnet10t", args.small, None, 0), "full-b": ("regnetx_002", args.small, None, 1),
               "rest-big": ("resnet10t", args.big, "rest", 2), "full-big": ("resnet10t", args.big, None, 3)}
    start = time.perf_counter()
    for name, (arch, size, task, seed) in members.items():
        run("train", "--config", cfg, f"name={name}", f"model.arch={arch}", f"data.image_size=[{size},{size}]",
            f"data.composite={COMPOSITE}", f"data.split.name={SPLIT}", f"train.epochs={args.epochs}",
            f"train.seed={seed}", *([f"data.task={task}"] if task else []), env=env)
        print(f"trained {name} ({arch}, {size} px{', task ' + task if task else ''}): "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    run("predict", "--members", *members, "--parts", "val", env=env)
    vals = {name: load_val(out, name) for name in members}
    ids, y, _ = vals["full-a"]
    probs = {}
    for name, (member_ids, _, p) in vals.items():
        order = pd.Index(member_ids).get_indexer(ids)
        probs[name] = p[order]
    split = pd.read_csv(out / "splits" / f"{SPLIT}.csv", dtype={"id": str, "group": str}).set_index("id")
    groups = split["group"].reindex(ids).to_numpy(dtype=str)
    report(probs, y, groups, time.perf_counter() - start, args)
    if not args.keep and not args.out:
        shutil.rmtree(out, ignore_errors=True)


def report(probs: dict[str, np.ndarray], y: np.ndarray, groups: np.ndarray, seconds: float, args) -> None:
    n = SPEC.n_classes
    full = ["full-a", "full-b"]
    baseline = soft_vote(np.stack([probs[m] for m in full]))[0]
    rows = {f"full-a ({args.small} px)": probs["full-a"].argmax(1), f"full-b ({args.small} px)": probs["full-b"].argmax(1),
            "rest-big alone, its task": None, "(a) full only: soft": baseline}
    plus = {m: probs[m] for m in [*full, "rest-big"]}
    task_of = {"rest-big": "rest"}
    soft = fixed_recipe("soft", SPEC.to_dict(), task_of, list(plus))
    labels, table = apply_tasks(soft, plus)
    rows["(b) + rest task member: soft per task"] = labels
    comparison = compare_tasks(SPEC, plus, task_of, y, groups)
    rows["(b) + rest task member: stack per task (cross-fitted)"] = comparison.honest["tasks:stack"]
    rows[f"(c) + third full member at {args.big} px: soft"] = soft_vote(np.stack([probs[m] for m in [*full, "full-big"]]))[0]
    rest_truth = SPEC.decode(y)[:, 1]
    rest_alone = float(macro_f1_many(rest_truth, probs["rest-big"].argmax(1)[None], 5)[0])
    scored = {k: v for k, v in rows.items() if v is not None}
    gains = paired_bootstrap_gains(y, {k: v for k, v in scored.items() if k.startswith(("(b)", "(c)"))}, baseline,
                                   1000, 0, range(n), groups=groups)
    lines = []
    for key, pred in scored.items():
        f1 = float(macro_f1_many(y, pred[None], n)[0])
        g = gains.get(key)
        lines.append({"ensemble": key, "macro_f1_honest": f1, "gain_vs_a": g["gain"] if g else np.nan,
                      "ci_low": g["low"] if g else np.nan, "ci_high": g["high"] if g else np.nan})
    frame = pd.DataFrame(lines)
    per_task = comparison.task_f1("soft", y)
    differ = int((table.argmax(1) != labels).sum())
    print(f"\n{len(y)} validation rows, {len(set(groups))} groups; {args.epochs} epoch(s); full members at "
          f"{args.small} px, rest task member at {args.big} px; total {seconds:.0f} s")
    print(frame.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4f}"))
    print(f"rest task member alone on its task: macro F1 {rest_alone:.4f}; per-task honest F1 of (b) soft: "
          + ", ".join(f"{t} {v:.4f}" for t, v in per_task.items()))
    print(f"soft re-encoding: product-table argmax differs from per-task argmax on {differ} of {len(y)} rows")


if __name__ == "__main__":
    main()
