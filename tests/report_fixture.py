"""Report inputs without training: real digit PNGs, members whose probabilities are drawn
around the true label with a known error rate, and a history.csv per member.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.recipe import Recipe, apply
from report.builder import ReportInputs, VoteOutcome

MEMBERS = {"alpha": 0.7, "beta": 0.6, "gamma": 0.5}   # name -> share of rows it gets right


def digit_rows(digits_root: Path, per_class: int) -> tuple[list[str], np.ndarray, list[str]]:
    """Real image files of the embedded digits, `per_class` of each class: (paths, labels, classes)."""
    train = digits_root / "train"
    classes = sorted((d.name for d in train.iterdir() if d.is_dir()), key=int)
    paths, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((train / name).glob("*.png"))[:per_class]:
            paths.append(str(path))
            labels.append(label)
    return paths, np.array(labels), classes


def member_probs(y: np.ndarray, n_classes: int, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities peaked on the true class for `accuracy` of the rows, on a random wrong one otherwise."""
    right = rng.random(len(y)) < accuracy
    wrong = (y + rng.integers(1, n_classes, len(y))) % n_classes
    target = np.where(right, y, wrong)
    logits = rng.normal(0, 0.5, (len(y), n_classes))
    logits[np.arange(len(y)), target] += 2.5
    probs = np.exp(logits)
    return probs / probs.sum(1, keepdims=True)


def write_history(run_dir: Path, epochs: int, rng: np.random.Generator) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    f1 = np.sort(rng.uniform(0.2, 0.9, epochs))
    pd.DataFrame({"epoch": np.arange(1, epochs + 1), "train_loss": 2.0 / np.arange(1, epochs + 1),
                  "val_loss": 2.2 / np.arange(1, epochs + 1), "val_f1_macro": f1, "val_acc": f1}).to_csv(
        run_dir / "history.csv", index=False)
    return run_dir


def synthetic_inputs(digits_root: Path, work: Path, per_class: int = 6, seed: int = 0) -> ReportInputs:
    rng = np.random.default_rng(seed)
    paths, y, classes = digit_rows(digits_root, per_class)
    members = {name: member_probs(y, len(classes), acc, rng) for name, acc in MEMBERS.items()}
    recipe = Recipe("soft", {"alpha": 2.0, "beta": 1.0, "gamma": 1.0})
    labels, table = apply(recipe, members)
    return ReportInputs(
        title="Ensemble report: synthetic", classes=classes, y_val=y, members=members,
        ensembles={"ensemble:soft": VoteOutcome(labels, table)}, primary="ensemble:soft", recipe=recipe,
        val_paths=paths, run_dirs={name: write_history(work / "runs" / name, 4, rng) for name in members},
        summary=["synthetic members drawn around the true labels"], n_boot=200,
        costs={"alpha": 4.0, "beta": 1.5, "gamma": 1.0})  # ms per image, as measured members carry
