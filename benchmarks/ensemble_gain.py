"""Does the ensemble beat its best unit, honestly? Fold groups versus holdout members on digits (CPU).

Trains 3 architectures x 5 folds of the digits split through `scripts.train` (32 px, few epochs),
then runs `scripts.vote --compare` twice:
  (a) fold groups: each architecture's 5 fold models vote as one unit, every fitted rule is fitted and
      scored on the out-of-fold predictions of all training rows (5x the rows of a holdout);
  (b) holdout members: the fold-0 model of each architecture, scored on fold 0's rows only.
For each method it prints the honest (cross-fitted) macro F1, the gain over the best unit (chosen inside
the cross-fit) with its 95% bootstrap interval (cluster bootstrap where the split has groups), and the
oracle rate (rows at least one unit gets right: the ceiling of any vote).

    .venv/bin/python benchmarks/ensemble_gain.py [--epochs 2] [--out /tmp/ensemble-gain] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
ARCHS = {"r10": "resnet10t", "rx2": "regnetx_002", "eff": "test_efficientnet"}
N_FOLDS = 5


def run(module: str, *args: str, env: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", f"scripts.{module}", *args], cwd=REPO, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"scripts.{module} {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def vote(name: str, units: list[str], flag: str, env: dict, out: Path) -> tuple[pd.DataFrame, float, str, int]:
    run("vote", flag, *units, "--rule", "best", "--compare", "--name", name, env=env)
    folder = out / "reports" / name
    metrics = json.loads((folder / "metrics.json").read_text())
    return (pd.read_csv(folder / "compare.csv"), metrics["diversity"]["oracle_rate"], metrics["resampling"],
            metrics["n_val_rows"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--out", help="output root (default: a temporary folder, removed unless --keep)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="ensemble-gain-"))
    env = dict(os.environ, PYTHONPATH=str(REPO), VOTE_OUTPUT_ROOT=str(out), VOTE_DATA_ROOT=str(out / "data"),
               TQDM_DISABLE="1", WANDB_MODE="disabled", VOTE_LOCAL_CONFIG=str(out / "none.yaml"),
               OMP_NUM_THREADS=env_threads())
    cfg = str(REPO / "configs" / "digits" / "resnet18.yaml")
    start = time.perf_counter()
    for prefix, arch in ARCHS.items():
        for k in range(N_FOLDS):
            run("train", "--config", cfg, f"name={prefix}-f{k}", f"model.arch={arch}", f"data.split.fold={k}",
                f"data.image_size=[{args.size},{args.size}]", f"train.epochs={args.epochs}", "train.batch_size=64",
                f"train.seed={k}", env=env)
        print(f"trained {prefix} ({arch}) x {N_FOLDS} folds: {time.perf_counter() - start:.0f} s", flush=True)
    rows = []
    for setting, units, flag in (("fold groups (OOF)", [f"{p}-f" for p in ARCHS], "--groups"),
                                 ("holdout members (fold 0)", [f"{p}-f0" for p in ARCHS], "--members")):
        table, oracle, scheme, n_rows = vote(setting.split()[0], units, flag, env, out)
        best_unit = table.loc[table["kind"] == "member", "f1_macro_honest"].max()
        for _, r in table[table["kind"].isin(["baseline", "ensemble"])].iterrows():
            rows.append({"setting": setting, "rows": n_rows, "method": r["method"],
                         "f1_honest": r["f1_macro_honest"], "best_unit_f1": best_unit, "gain": r["gain"],
                         "ci_low": r["ci_low"], "ci_high": r["ci_high"], "verdict": r["verdict"],
                         "oracle_rate": oracle})
        print(f"{setting}: {n_rows} rows, resampling {scheme}", flush=True)
    frame = pd.DataFrame(rows)
    print(f"\n{len(ARCHS)} archs x {N_FOLDS} folds, {args.size} px, {args.epochs} epoch(s); "
          f"total {time.perf_counter() - start:.0f} s")
    print(frame.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4f}"))
    if not args.keep and not args.out:
        shutil.rmtree(out, ignore_errors=True)


def env_threads() -> str:
    # One thread per process: on a busy 2-core box, OpenMP threads that wait for each other cost more than they give.
    return os.environ.get("OMP_NUM_THREADS", "1")


if __name__ == "__main__":
    main()
