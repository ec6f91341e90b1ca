"""Does the ensemble beat its best unit, honestly? Fold groups versus holdout members on digits (CPU).

Trains 3 architectures x 5 folds of the digits split through `scripts.train` (32 px, few epochs),
then runs `scripts.vote --compare` twice:
  (a) fold groups: each architecture's 5 fold models vote as one unit, every fitted rule is fitted and
      scored on the out-of-fold predictions of all training rows (5x the rows of a holdout);
  (b) holdout members: the fold-0 model of each architecture, scored on fold 0's rows only.
For each method it prints the honest (cross-fitted) macro F1, the gain over the best unit (chosen inside
the cross-fit) with its 95% bootstrap interval (cluster bootstrap where the split has groups), and the
oracle rate (rows at least one unit gets right: the ceiling of any vote).

Then hill climbing's two spaces side by side on the fold groups' out-of-fold rows: weights on
probabilities (the default) and on log-probabilities, each cross-fitted like every rule (5 folds, gain
over the best unit chosen inside the cross-fit, 95 % paired bootstrap).

    .venv/bin/python benchmarks/ensemble_gain.py [--epochs 2] [--out /tmp/ensemble-gain] [--keep]
    .venv/bin/python benchmarks/ensemble_gain.py --spaces-only --out /tmp/ensemble-gain   # a kept run's units
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


def space_rows(out: Path, env: dict) -> pd.DataFrame:
    """Hill climbing on probabilities vs log-probabilities, cross-fitted on the fold groups' OOF rows."""
    import numpy as np

    sys.path.insert(0, str(REPO))
    from ensemble.hillclimb import apply_blend, hill_climb
    from ensemble.honest import choose_best_member, crossfit_many, make_folds, paired_bootstrap_gains
    from ensemble.metrics import macro_f1_many

    probs, y, ids = [], None, None
    for prefix in ARCHS:
        path = out / "oof" / f"{prefix}-f.npz"
        if not path.exists():
            run("oof", "--prefix", f"{prefix}-f", env=env)
        with np.load(path, allow_pickle=False) as z:
            probs.append(z["probs"].astype(np.float64))
            y = z["labels"].astype(np.int64)
            assert ids is None or np.array_equal(ids, z["ids"]), "fold groups list their rows in different orders"
            ids = z["ids"]
    names, stacked = list(ARCHS), np.stack(probs)
    n_classes = stacked.shape[2]
    folds = make_folds(y, 5, 0)

    def climber(space: str):
        def fit(p, yy, nn):
            weights, _ = hill_climb(p, yy, nn, space=space)
            w = [weights.get(n, 0.0) for n in nn]
            return lambda test: apply_blend(test, w, space)[0]
        return fit

    def best(p, yy, nn):
        i = nn.index(choose_best_member(p, yy, nn))
        return lambda test: test[i].argmax(1)

    start = time.perf_counter()
    honest = crossfit_many({"prob": climber("prob"), "log": climber("log"), "best": best}, stacked, y, names, folds)
    seconds = time.perf_counter() - start
    boot = paired_bootstrap_gains(y, {k: honest[k] for k in ("prob", "log")}, honest["best"], 1000, 0, range(n_classes))
    return pd.DataFrame([{"space": k, "f1_honest": macro_f1_many(y, honest[k][None], n_classes)[0], "gain": boot[k]["gain"],
                          "ci_low": boot[k]["low"], "ci_high": boot[k]["high"], "verdict": boot[k]["verdict"]}
                         for k in ("prob", "log")]).assign(crossfit_s_both=seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--out", help="output root (default: a temporary folder, removed unless --keep)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--spaces-only", action="store_true", help="only the hill-climbing space rows, on --out's "
                                                                   "already-trained fold groups")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="ensemble-gain-"))
    env = dict(os.environ, PYTHONPATH=str(REPO), VOTE_OUTPUT_ROOT=str(out), VOTE_DATA_ROOT=str(out / "data"),
               TQDM_DISABLE="1", WANDB_MODE="disabled", VOTE_LOCAL_CONFIG=str(out / "none.yaml"),
               OMP_NUM_THREADS=env_threads())
    if args.spaces_only:
        print(space_rows(out, env).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        return
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
    print("\nhill climbing: probabilities vs log-probabilities (fold groups, cross-fitted)")
    print(space_rows(out, env).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if not args.keep and not args.out:
        shutil.rmtree(out, ignore_errors=True)


def env_threads() -> str:
    # One thread per process: on a busy 2-core box, OpenMP threads that wait for each other cost more than they give.
    return os.environ.get("OMP_NUM_THREADS", "1")


if __name__ == "__main__":
    main()
