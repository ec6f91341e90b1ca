"""Distillation on the digits data (CPU, a few minutes): does one student reach the ensemble's accuracy?

    .venv/bin/python benchmarks/distill.py [--epochs 4] [--size 32] [--temperature 4] [--alpha 0.9] [--keep DIR]
        [--teachers resnet18.yaml tv_resnet18.yaml] [--seeds N]   (N seeds of the first config as the teacher)

In a temporary output root it trains the three digits members of `make demo` (timm resnet18, timm
regnetx_002, torchvision resnet18), writes the recipe of their equal-weight soft vote (the teacher),
and trains two students of the best member's architecture from the same seed (one the members did
not use): one with plain cross-entropy (`distill.alpha=0`, no teacher) and one through
`jobs.distill` (the project's way). It prints, for the teacher ensemble, the best member and both
students, validation and test macro F1 and inference img/s (the test rows predicted through
`predict_members` with `force=True`, images already decoded in the cache, so the figure is the
models' cost; the ensemble runs all its members on each batch). Last, the share of the
best-member-to-ensemble gap the distilled student closes (goal: >= 0.5).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script, Python would only see benchmarks/
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

CONFIGS = ["resnet18.yaml", "regnetx_002.yaml", "tv_resnet18.yaml"]


def macro_f1(y: np.ndarray, pred: np.ndarray, n: int) -> float:
    return float(f1_score(y, pred, average="macro", labels=range(n), zero_division=0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.9)
    parser.add_argument("--student-seed", type=int, default=7)
    parser.add_argument("--teachers", nargs="+", default=CONFIGS, choices=CONFIGS,
                        help="the teacher's member configs under configs/digits (default: all three)")
    parser.add_argument("--seeds", type=int, default=0,
                        help="instead: a teacher of N seeds of the first --teachers config (a seed ensemble)")
    parser.add_argument("--keep", help="output root to use (and keep) instead of a temporary folder")
    args = parser.parse_args(argv)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="distill-bench-"))
    os.environ.update(VOTE_OUTPUT_ROOT=str(root), VOTE_DATA_ROOT=str(root / "data"),
                      VOTE_LOCAL_CONFIG=str(root / "none.yaml"))

    from core.config import load_config
    from core.console import console_logging
    from core.registry import Registry
    from core.settings import REPO_ROOT, load_settings
    from ensemble.recipe import Recipe, apply
    from imagedata.digits import ensure_digits
    from imagedata.sources import DatasetListing
    from jobs.distill import DistillRequest, distill_command
    from jobs.train import train_member
    from predict.run import predict_members

    console_logging()
    started = time.perf_counter()
    settings = load_settings()
    ensure_digits(settings.data_root / "digits")
    registry = Registry(settings.registry)
    common = [f"train.epochs={args.epochs}", f"data.image_size=[{args.size},{args.size}]",
              "early_stopping.patience=100"]
    names = []
    teachers = ([(args.teachers[0], [f"train.seed={k}", f"name={Path(args.teachers[0]).stem}-seed{k}"])
                 for k in range(args.seeds)] if args.seeds else [(f, []) for f in args.teachers])
    for file, extra in teachers:
        config = load_config(REPO_ROOT / "configs" / "digits" / file, common + extra)
        if not registry.exists(config.name):
            train_member(config, settings)
        names.append(config.name)
    entries = {e.name: e for e in registry.members()}
    best = max(names, key=lambda n: entries[n].metrics["val_f1_macro"])
    best_file = teachers[names.index(best)][0]
    tag = "-".join(names) + f"-T{args.temperature:g}-a{args.alpha:g}"
    distilled = f"student-distilled-{tag}"
    recipe_path = root / "submissions" / f"teacher-{tag}.recipe.yaml"
    recipe_path.parent.mkdir(parents=True, exist_ok=True)
    recipe = Recipe("soft", dict.fromkeys(names, 1.0), note="benchmark teacher: equal-weight soft vote")
    recipe.to_yaml(recipe_path)

    student_cfg = str(REPO_ROOT / "configs" / "digits" / best_file)
    student = common + [f"train.seed={args.student_seed}"]
    if not registry.exists("student-plain"):
        train_member(load_config(student_cfg, student + ["name=student-plain"]), settings)
    if not registry.exists(distilled):
        distill_command(DistillRequest(recipe=str(recipe_path), config=student_cfg, overrides=student + [
            f"name={distilled}", f"distill.temperature={args.temperature}", f"distill.alpha={args.alpha}"]),
            settings)
    train_s = time.perf_counter() - started

    everyone = names + ["student-plain", distilled]
    preds = predict_members(everyone, registry, settings, parts=("val", "test"))
    config = load_config(REPO_ROOT / "configs" / "digits" / best_file, common)
    dataset = DatasetListing().load(config.data, settings.data_root)
    truth = pd.read_csv(dataset.test_labels, dtype={"ImageID": str}).set_index("ImageID")["label"]
    n_classes = len(entries[best].classes)
    y_val = preds[best]["val"].labels
    y_test = truth.loc[[str(i) for i in preds[best]["test"].ids]].to_numpy()

    def rate(members: list[str]) -> float:
        n = len(preds[members[0]]["test"].ids)
        predict_members(members, registry, settings, parts=("test",), force=True)  # warm: decode cache, threads
        t0 = time.perf_counter()
        predict_members(members, registry, settings, parts=("test",), force=True)
        return n / (time.perf_counter() - t0)

    rows = []
    for label, members in [(f"teacher ensemble (soft vote of {len(names)})", names), (f"best member ({best})", [best]),
                           ("student, plain CE", ["student-plain"]), ("student, distilled", [distilled])]:
        by = {split: {m: preds[m][split].probs for m in members} for split in ("val", "test")}
        val_pred = apply(Recipe("soft", dict.fromkeys(members, 1.0)), by["val"])[0]
        test_pred = apply(Recipe("soft", dict.fromkeys(members, 1.0)), by["test"])[0]
        rows.append({"model": label, "members": len(members), "val_f1_macro": macro_f1(y_val, val_pred, n_classes),
                     "test_f1_macro": macro_f1(y_test, test_pred, n_classes), "img_per_s": rate(members)})
    table = pd.DataFrame(rows)
    print(f"\ndigits, {args.size} px, {args.epochs} epochs per model, student arch = best member's "
          f"({entries[best].arch}), T={args.temperature}, alpha={args.alpha}; training took {train_s:.0f} s")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for split in ("val", "test"):
        col = f"{split}_f1_macro"
        ens, one, dist, plain = (table[col][i] for i in (0, 1, 3, 2))
        gap = ens - one
        closed = (dist - one) / gap if gap > 0 else float("nan")
        print(f"{split}: ensemble - best member = {gap:+.4f}; distilled - best member = {dist - one:+.4f}; "
              f"distilled - plain student = {dist - plain:+.4f}; share of the gap closed = {closed:.2f}")
    print(f"total {time.perf_counter() - started:.0f} s; outputs in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
