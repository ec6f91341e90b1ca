"""Do fold-safe pseudo-labels help, and how much does a leaky teacher inflate the validation score? (digits, CPU)

1. Trains ARCHS x FOLDS of digits as fold groups through `scripts.train` (the base units).
2. `scripts.vote --groups … --rule stack` saves their stacked recipe; `scripts.pseudo` pseudo-labels the test
   images from it, fold-safely (fold k's labels from each unit's fold-k model, stacked).
3. A deliberately leaky set is forged beside it (the library refuses to make one): every fold's labels come
   from the recipe on the mean of all fold models, which trained on that fold's rows.
4. Every unit is retrained on each set (same seeds, same settings), then each unit's honest out-of-fold
   macro F1 (over all training rows) and test macro F1 (mean of its fold models; digits' test labels are known)
   are printed for: no pseudo-labels, fold-safe, leaky. A leak shows as an OOF gain the test score does not share.

    .venv/bin/python benchmarks/pseudo_gain.py            # 3 archs x 5 folds, 32 px, 2 epochs
    .venv/bin/python benchmarks/pseudo_gain.py --quick    # 2 archs x 3 folds, 16 px, 1 epoch
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
import yaml
from sklearn.metrics import f1_score

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from core.registry import Registry
from ensemble import pseudo
from ensemble.recipe import Recipe, apply
from jobs.pseudo_set import PseudoSet, write_set

ARCHS = {"r10": "resnet10t", "rx2": "regnetx_002", "eff": "test_efficientnet"}


def run(module: str, *args: str, env: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", f"scripts.{module}", *args], check=False, cwd=REPO, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"scripts.{module} {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def registered(out: Path) -> set[str]:
    path = out / "registry.yaml"
    return {e.name for e in Registry(path).members()} if path.is_file() else set()


def train_all(tag: str, archs: dict, folds: int, common: list[str], env: dict, extra: list[str], out: Path) -> None:
    """Every unit's fold models; members already registered under --out (an earlier, interrupted run) are kept."""
    cfg = str(REPO / "configs" / "digits" / "resnet18.yaml")
    done = registered(out)
    for prefix, arch in archs.items():
        for k in range(folds):
            if f"{prefix}{tag}-f{k}" in done:
                continue
            run("train", "--config", cfg, f"name={prefix}{tag}-f{k}", f"model.arch={arch}", f"data.split.fold={k}",
                f"train.seed={k}", *common, *extra, env=env)


def cached(out: Path, member: str, split: str) -> np.ndarray:
    with np.load(out / "cache" / "predictions" / member / f"{split}.npz") as data:
        return data["probs"].astype(np.float64)


def forge_leaky(out: Path, recipe: Recipe, units: dict[str, list[str]], threshold: float) -> None:
    """pseudo/leak: every fold labelled by the recipe on the mean of ALL fold models (they saw the fold)."""
    record = yaml.safe_load((out / "pseudo" / "safe" / "pseudo.yaml").read_text())
    with np.load(out / "pseudo" / "safe" / "teacher.npz") as data:
        ids, classes, folds = data["ids"], data["classes"].tolist(), data["folds"].tolist()
    _, leaky = apply(recipe, {u: np.mean([cached(out, m, "test") for m in ms], axis=0) for u, ms in units.items()})
    leaky = np.asarray(leaky) / np.asarray(leaky).sum(1, keepdims=True)
    probs = {k: leaky for k in folds}
    passing = {k: pseudo.select(leaky, threshold) for k in folds}
    meta = {k: v for k, v in record.items() if k not in ("name", "classes", "rows", "counts", "teacher_sha256")}
    made = PseudoSet("leak", classes, ids, probs, passing, meta | {"note": "forged by benchmarks/pseudo_gain.py: LEAKY"})
    write_set(out / "pseudo" / "leak", made, pseudo.table(ids, classes, leaky, probs, passing),
              pseudo.counts(classes, probs, passing))


def scores(out: Path, tag: str, archs: dict, folds: int, test_labels: np.ndarray, env: dict) -> dict[str, tuple]:
    members = [f"{p}{tag}-f{k}" for p in archs for k in range(folds)]
    run("predict", "--members", *members, "--parts", "test", env=env)
    found = {}
    for prefix in archs:
        unit = f"{prefix}{tag}-f"
        run("oof", "--prefix", unit, "--out", str(out / "oof" / f"{unit}.npz"), "--overwrite", env=env)
        with np.load(out / "oof" / f"{unit}.npz") as data:
            oof = f1_score(data["labels"], data["probs"].argmax(1), average="macro")
        test = np.mean([cached(out, f"{unit}{k}", "test") for k in range(folds)], axis=0)
        found[prefix] = (oof, f1_score(test_labels, test.argmax(1), average="macro"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 archs x 3 folds, 16 px, 1 epoch")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--archs", nargs="+", choices=list(ARCHS), help="unit prefixes to train (default: all)")
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--rule", default="stack", help="the teacher recipe's rule (stack needs two or more archs)")
    parser.add_argument("--out", help="output root (default: a temporary folder, removed unless --keep)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    archs = dict(list(ARCHS.items())[:2]) if args.quick else ARCHS
    archs = {p: ARCHS[p] for p in args.archs} if args.archs else archs
    folds, epochs, size = (3, 1, 16) if args.quick else (5, 2, 32)
    epochs, size = args.epochs or epochs, args.size or size
    out = Path(args.out or tempfile.mkdtemp(prefix="pseudo-gain-"))
    env = dict(os.environ, PYTHONPATH=str(REPO), VOTE_OUTPUT_ROOT=str(out), VOTE_DATA_ROOT=str(out / "data"),
               TQDM_DISABLE="1", WANDB_MODE="disabled", VOTE_LOCAL_CONFIG=str(out / "none.yaml"),
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    common = [f"data.image_size=[{size},{size}]", f"train.epochs={epochs}", "train.batch_size=64",
              f"data.split.name=digits-k{folds}", f"data.split.n_folds={folds}"]
    start = time.perf_counter()
    train_all("", archs, folds, common, env, [], out)
    print(f"base units trained: {time.perf_counter() - start:.0f} s", flush=True)
    run("vote", "--groups", *[f"{p}-f" for p in archs], "--rule", args.rule, "--name", "base", "--overwrite", env=env)
    recipe_path = out / "submissions" / "base.recipe.yaml"
    print(run("pseudo", "--recipe", str(recipe_path), "--name", "safe", "--threshold", str(args.threshold),
              "--overwrite", env=env))
    recipe = Recipe.from_yaml(recipe_path)
    forge_leaky(out, recipe, recipe.groups, args.threshold)
    for tag, name in (("-s", "safe"), ("-l", "leak")):
        train_all(tag, archs, folds, common, env, [f"data.pseudo={name}"], out)
        print(f"units retrained on '{name}': {time.perf_counter() - start:.0f} s", flush=True)
    truth = pd.read_csv(out / "data" / "digits" / "test" / "labels.csv", dtype={"ImageID": str})
    with np.load(out / "cache" / "predictions" / f"{next(iter(archs))}-f0" / "test.npz") as data:
        test_labels = truth.set_index("ImageID").loc[data["ids"].astype(str), "label"].to_numpy()
    table = {tag: scores(out, tag, archs, folds, test_labels, env) for tag in ("", "-s", "-l")}
    rows = [{"unit": f"{p} ({a})", "oof_none": table[""][p][0], "oof_safe": table["-s"][p][0],
             "oof_leaky": table["-l"][p][0], "test_none": table[""][p][1], "test_safe": table["-s"][p][1],
             "test_leaky": table["-l"][p][1]} for p, a in archs.items()]
    leak_rows = {k: int(v) for k, v in yaml.safe_load((out / "pseudo" / "leak" / "pseudo.yaml").read_text())["rows"].items()}
    safe_rows = {k: int(v) for k, v in yaml.safe_load((out / "pseudo" / "safe" / "pseudo.yaml").read_text())["rows"].items()}
    print(f"\n{len(archs)} archs x {folds} folds, {size} px, {epochs} epoch(s), teacher rule {args.rule}, threshold "
          f"{args.threshold}; pseudo rows "
          f"per fold: safe {safe_rows}, leaky {leak_rows}; total {time.perf_counter() - start:.0f} s")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if not args.keep and not args.out:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
