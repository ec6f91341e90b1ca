"""What the report reads from the members' run folders and registry entries: histories, students, splits."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml


def history_of(run_dir: Path | None) -> pd.DataFrame | None:
    if run_dir is None or not (run_dir / "history.csv").is_file():
        return None
    try:
        history = pd.read_csv(run_dir / "history.csv")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None
    return history if "epoch" in history.columns and len(history) else None


def student_of(run_dir: Path | None) -> dict | None:
    """A distilled student's `distilled_from.yaml` (written by scripts.distill in its run folder), else None."""
    path = run_dir / "distilled_from.yaml" if run_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        found = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return None
    return found if isinstance(found, dict) and found.get("members") else None


def student_lines(students: dict[str, dict], val_table: pd.DataFrame) -> list[str]:
    """Each student beside its teacher: the recipe it learned from and both validation scores."""
    f1 = val_table.set_index("name")["f1_macro"]
    lines = []
    for name, origin in students.items():
        teacher = origin.get("teacher_val_f1_macro")
        versus = f" (its teacher: {teacher:.4f} when it was distilled)" if isinstance(teacher, (int, float)) else ""
        lines.append(f"`{name}` is a **student** distilled from recipe `{origin.get('recipe')}` (rule "
                     f"`{origin.get('rule', '?')}` over {', '.join(f'`{m}`' for m in origin['members'])}; targets "
                     f"{origin.get('targets', 'in-sample')}): validation macro F1 {f1.get(name, float('nan')):.4f}"
                     f"{versus}, at one member's inference cost.")
    return lines


def split_line(member_splits: dict[str, dict]) -> str | None:
    """The header line: the split and duplicate setting the members share (or how they differ)."""
    if not member_splits:
        return None

    def key(split: dict) -> str:
        # Entries from before duplicates were grouped record no setting; their split grouped nothing.
        dup = split.get("duplicates", "off (not recorded)")
        merged = f", {split['merged_groups']} group(s) merged" if split.get("merged_groups") else ""
        return f"split `{split.get('name')}` ({str(split.get('sha256', ''))[:12]}), duplicates {dup}{merged}"

    kinds: dict[str, list[str]] = {}
    for name, split in member_splits.items():
        kinds.setdefault(key(split), []).append(name)
    if len(kinds) == 1:
        return f"Validation: {next(iter(kinds))}, shared by every member"
    return "Validation differs between members: " + "; ".join(f"{k} for {', '.join(v)}" for k, v in kinds.items())
