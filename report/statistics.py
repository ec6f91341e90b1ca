"""The report's numbers: scores of every member and vote, scikit-learn's text reports, and the honest table,
taken from the comparison (ensemble/compare.py) and never recomputed here."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, f1_score

from ensemble.compare import COLUMNS, Comparison, compare
from ensemble.composite import CompositeSpec
from ensemble.submitted import submitted_row
from report.inputs import ReportInputs

COMPARE_COLUMNS = COLUMNS  # one list, beside the comparison that fills it


def score(y: np.ndarray, pred: np.ndarray, n_classes: int) -> dict:
    return {"f1_macro": float(f1_score(y, pred, average="macro", labels=range(n_classes), zero_division=0)),
            "acc": float(accuracy_score(y, pred))}


def score_table(y: np.ndarray, preds: dict[str, np.ndarray], n_classes: int, kinds: dict[str, str],
                composite: CompositeSpec | None = None) -> pd.DataFrame:
    """One row per member/vote: macro F1 and accuracy, and per task when labels are composite."""
    rows = []
    for name, pred in preds.items():
        row = {"name": name, "kind": kinds.get(name, "member"), **score(y, pred, n_classes)}
        if composite is not None:
            for (task, size), yt, pt in zip(composite.tasks, composite.decode(y).T, composite.decode(pred).T):
                task_score = score(yt, pt, size)
                row[f"{task}_f1_macro"], row[f"{task}_acc"] = task_score["f1_macro"], task_score["acc"]
        rows.append(row)
    return pd.DataFrame(rows)


def classification_reports(inputs: ReportInputs, preds: dict[str, np.ndarray]) -> dict[str, str]:
    """scikit-learn's text report for every member and ensemble, and per task for composite labels."""
    labels = list(range(len(inputs.classes)))
    reports = {name: classification_report(inputs.y_val, pred, labels=labels, target_names=inputs.classes,
                                           digits=4, zero_division=0)
               for name, pred in preds.items()}
    if inputs.composite is not None:
        spec = inputs.composite
        y_tasks = spec.decode(inputs.y_val)
        for name, pred in preds.items():
            p_tasks = spec.decode(pred)
            for t, (task, size) in enumerate(spec.tasks):
                reports[f"{name} · {task}"] = classification_report(
                    y_tasks[:, t], p_tasks[:, t], labels=list(range(size)),
                    target_names=[f"{task}={v}" for v in range(size)], digits=4, zero_division=0)
    return reports


def comparison_of(inputs: ReportInputs) -> tuple[Comparison | None, str]:
    """The caller's comparison, or one computed here; (None, why) when it cannot run."""
    if len(inputs.members) < 2:
        return None, "One member only: there is no ensemble to compare with."
    if inputs.compare is not None:
        return inputs.compare, ""
    try:
        return compare(inputs.members, inputs.y_val, len(inputs.classes), inputs.composite, inputs.seed,
                       n_splits=inputs.n_splits, n_boot=inputs.n_boot, groups=inputs.groups,
                       extra=[inputs.recipe.method] if inputs.recipe.method else ()), ""
    except ValueError as err:
        # Too few rows for the folds, say: the rest of the report is still worth having.
        return None, f"The honest comparison could not run on these rows: {err}"


def compare_table(inputs: ReportInputs, comparison: Comparison | None = None,
                  why: str = "") -> tuple[pd.DataFrame | None, str, str]:
    """The comparison's honest table plus a row for the submitted recipe; (None, why, "") when it cannot run.

    The submitted row is the comparison's own row for the rule that made the recipe (ensemble/submitted.py):
    nothing is scored again, and nothing in-sample reaches an honest column. Returns (table, why, the
    sentence saying which row the submitted row was taken from, or why it is blank)."""
    if comparison is None and not why:
        comparison, why = comparison_of(inputs)
    if comparison is None:
        return None, why, ""
    chosen = inputs.ensembles[inputs.primary].labels
    in_sample = score(inputs.y_val, chosen, len(inputs.classes))["f1_macro"]
    row, source, blank = submitted_row(comparison, inputs.recipe, inputs.primary, in_sample)
    note = (f"the submitted row is the cross-fitted row of rule `{source}`, the rule that made this recipe."
            if source else f"the submitted row is blank: {blank}")
    table = pd.concat([comparison.table, pd.DataFrame([row])], ignore_index=True)[COMPARE_COLUMNS]
    return table, "", note
