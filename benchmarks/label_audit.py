"""Does auditing labels with the ensemble's out-of-fold predictions help? Digits with planted flips (CPU).

1. Writes the digits pool as a `path,label` list with 5 % of its labels moved to another class (seeded).
2. Trains 3 architectures x 5 folds on it (`scripts.train`, 16 px, few epochs) and audits them
   (`scripts.audit --groups …`): precision and recall of the suspects against the planted flips.
3. Retrains the same fold groups after each automatic correction of every suspect (no person reviewed
   them): `drop` (the suspects leave the pool) and `relabel` (each gets the ensemble's suggested label),
   and on the clean labels (the ceiling), each on its own split.
4. For each training set: the soft vote of the fold groups' out-of-fold probabilities scored against the
   TRUE labels (honest: every row predicted by a model that never trained on it; after `drop` only the
   rows kept are scored), and the submission's test macro F1 against the true test labels.

    .venv/bin/python benchmarks/label_audit.py [--epochs 3] [--folds 5] [--quick] [--out DIR] [--keep]

`--quick`: 2 architectures (resnet10t, test_efficientnet) x 3 folds, 2 epochs: 24 small trainings.
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
ARCHS = {"r10": "resnet10t", "rx2": "regnetx_002", "eff": "test_efficientnet"}
FLIP_SHARE = 0.05


def run(module: str, *args: str, env: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", f"scripts.{module}", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"scripts.{module} {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def write_lists(digits: Path, out: Path, seed: int = 0) -> tuple[pd.DataFrame, set[str]]:
    rows = sorted((digits / "train").rglob("*.png"))
    clean = pd.DataFrame({"path": [str(p) for p in rows], "label": [int(p.parent.name) for p in rows]})
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(clean), size=round(FLIP_SHARE * len(clean)), replace=False)
    noisy = clean.copy()
    noisy.loc[flipped, "label"] = (noisy.loc[flipped, "label"] + rng.integers(1, 10, len(flipped))) % 10
    out.mkdir(parents=True, exist_ok=True)
    clean.to_csv(out / "clean.csv", index=False)
    noisy.to_csv(out / "noisy.csv", index=False)
    return clean, {clean["path"][i] for i in flipped}


def registered(out: Path) -> set[str]:
    """Members already in the output root's registry: a rerun with --out skips what it trained before."""
    path = out / "registry.yaml"
    return {m["name"] for m in yaml.safe_load(path.read_text())["members"]} if path.is_file() else set()


def train_groups(tag: str, lst: Path, args, env: dict, extra: list[str], digits: Path) -> None:
    cfg = str(REPO / "configs" / "digits" / "resnet18.yaml")
    done = registered(Path(env["VOTE_OUTPUT_ROOT"]))
    for prefix, arch in ARCHS.items():
        for k in range(args.folds):
            if f"{tag}-{prefix}-f{k}" in done:
                continue
            run("train", "--config", cfg, f"name={tag}-{prefix}-f{k}", f"model.arch={arch}", f"data.split.fold={k}",
                f"data.split.name={tag}-k{args.folds}", f"data.split.n_folds={args.folds}", "data.source=csv",
                f"data.root={lst}", f"data.test={digits / 'test' / 'info.csv'}", "data.duplicates=off",
                f"data.image_size=[{args.size},{args.size}]", f"train.epochs={args.epochs}", "train.batch_size=64",
                f"train.seed={k}", *extra, env=env)


def honest_scores(tag: str, out: Path, env: dict, truth: pd.Series, test_truth: pd.Series) -> dict:
    """Soft vote of the groups' OOF probabilities vs the true labels, and the submission's test macro F1."""
    probs, ids = None, None
    for prefix in ARCHS:
        path = out / "oof" / f"{tag}-{prefix}.npz"
        run("oof", "--prefix", f"{tag}-{prefix}-f", "--out", str(path), "--overwrite", env=env)
        with np.load(path, allow_pickle=False) as data:
            order = np.argsort(data["ids"])
            ids, p = data["ids"][order], data["probs"][order].astype(np.float64)
        probs = p if probs is None else probs + p
    pred = probs.argmax(1)
    y = truth.reindex(ids).to_numpy()
    run("vote", "--groups", *[f"{tag}-{p}-f" for p in ARCHS], "--rule", "soft", "--name", tag, "--overwrite", env=env)
    sub = pd.read_csv(out / "submissions" / f"{tag}.csv", dtype={"ImageID": str}).set_index("ImageID")["ans"]
    return {"rows scored": len(ids), "OOF macro F1 (true labels)": f1_score(y, pred, average="macro"),
            "test macro F1": f1_score(test_truth.reindex(sub.index).to_numpy(), sub.to_numpy(), average="macro")}


def corrections_for(audit: Path, action: str) -> Path:
    table = pd.read_csv(audit / "suspects.csv", dtype=str, keep_default_na=False)
    path = audit / f"corrections-{action}.csv"
    pd.DataFrame({"id": table["id"], "action": action,
                  "label": table["suggested"] if action == "relabel" else ""}).to_csv(path, index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="2 archs x 3 folds, 2 epochs")
    parser.add_argument("--out", help="output root (default: a temporary folder, removed unless --keep)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.folds, args.epochs = 3, 2
        for slow in ("rx2",):
            ARCHS.pop(slow)
    out = Path(args.out or tempfile.mkdtemp(prefix="label-audit-"))
    env = dict(os.environ, PYTHONPATH=str(REPO), VOTE_OUTPUT_ROOT=str(out), VOTE_DATA_ROOT=str(out / "data"),
               TQDM_DISABLE="1", WANDB_MODE="disabled", VOTE_LOCAL_CONFIG=str(out / "none.yaml"),
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    sys.path.insert(0, str(REPO))
    from imagedata.digits import ensure_digits

    digits = ensure_digits(out / "data" / "digits")
    clean, flipped = write_lists(digits, out / "lists")
    truth = pd.Series(clean["label"].to_numpy(), index=[Path(p).as_posix() for p in clean["path"]])
    test_truth = pd.read_csv(digits / "test" / "labels.csv", dtype={"ImageID": str}).set_index("ImageID")["label"]
    start = time.perf_counter()
    train_groups("noisy", out / "lists" / "noisy.csv", args, env, [], digits)
    print(f"trained noisy: {time.perf_counter() - start:.0f} s", flush=True)
    run("audit", "--groups", *[f"noisy-{p}-f" for p in ARCHS], "--name", "bench", "--overwrite", env=env)
    audit = out / "audits" / "bench"
    found = set(pd.read_csv(audit / "suspects.csv", dtype=str)["path"])
    hits = len(found & flipped)
    print(f"audit: {len(found)} suspects, {hits} of {len(flipped)} planted flips: precision "
          f"{hits / max(len(found), 1):.3f}, recall {hits / len(flipped):.3f} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    rows = {"noisy labels (baseline)": honest_scores("noisy", out, env, truth, test_truth)}
    for action in ("drop", "relabel"):
        train_groups(action, out / "lists" / "noisy.csv", args, env, [f"data.corrections={corrections_for(audit, action)}"],
                     digits)
        rows[f"after audit, {action} every suspect"] = honest_scores(action, out, env, truth, test_truth)
        print(f"trained {action}: {time.perf_counter() - start:.0f} s", flush=True)
    train_groups("clean", out / "lists" / "clean.csv", args, env, [], digits)
    rows["clean labels (ceiling)"] = honest_scores("clean", out, env, truth, test_truth)
    print(f"\n{len(ARCHS)} archs x {args.folds} folds, {args.size} px, {args.epochs} epoch(s), "
          f"{FLIP_SHARE:.0%} planted flips ({len(flipped)} rows); total {time.perf_counter() - start:.0f} s")
    print(f"audit precision {hits / max(len(found), 1):.3f}, recall {hits / len(flipped):.3f} "
          f"({hits} of {len(flipped)} flips among {len(found)} suspects)")
    print(pd.DataFrame(rows).T.to_string(float_format=lambda v: f"{v:.4f}"))
    if not args.keep and not args.out:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
