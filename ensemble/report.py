"""The ensemble report: a score table, scikit-learn classification reports and confusion matrices."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, f1_score

from core import atomic
from members.artifacts import plot_confusion


def score(y: np.ndarray, pred: np.ndarray, n_classes: int) -> dict:
    return {"f1_macro": float(f1_score(y, pred, average="macro", labels=range(n_classes), zero_division=0)),
            "acc": float(accuracy_score(y, pred))}


def score_table(y: np.ndarray, preds: dict[str, np.ndarray], n_classes: int, kinds: dict[str, str]) -> pd.DataFrame:
    rows = [{"name": name, "kind": kinds.get(name, "member"), **score(y, pred, n_classes)}
            for name, pred in preds.items()]
    return pd.DataFrame(rows)


def markdown_table(frame: pd.DataFrame, floatfmt: str = "{:.4f}") -> str:
    def cell(value) -> str:
        if isinstance(value, (float, np.floating)):
            return floatfmt.format(value)
        return str(value)

    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)


def write_report(out_dir: Path, classes: list[str], y_val: np.ndarray, preds_val: dict[str, np.ndarray],
                 val_table: pd.DataFrame, test_table: pd.DataFrame | None = None,
                 sections: list[str] | None = None) -> Path:
    """Write report.md, one confusion PNG per member/vote and the classification reports."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# Ensemble report", "", "## Validation scores (macro F1 is the metric)", "", markdown_table(val_table), ""]
    if test_table is not None:
        lines += ["## Test scores of the submission rows (labels known: demo data only)", "",
                  markdown_table(test_table), ""]
    lines += sections or []
    lines += ["## Classification reports (validation)", ""]
    text_reports = []
    for name, pred in preds_val.items():
        report = classification_report(y_val, pred, labels=list(range(len(classes))), target_names=classes,
                                       digits=4, zero_division=0)
        text_reports.append(f"== {name} ==\n{report}")
        png = plot_confusion(y_val, pred, classes, out_dir / f"confusion_{safe_name(name)}.png",
                             f"{name}: validation (row-normalised)")
        lines += [f"### {name}", "", "```", report.rstrip(), "```", "", f"![confusion {name}]({png.name})", ""]
    atomic.write_text(out_dir / "classification_reports.txt", "\n".join(text_reports))
    val_table.to_csv(out_dir / "scores_val.csv", index=False)
    if test_table is not None:
        test_table.to_csv(out_dir / "scores_test.csv", index=False)
    return atomic.write_text(out_dir / "report.md", "\n".join(lines) + "\n")
