"""A vote's outputs (submission, recipe, report) appear together or not at all.

The report, the slow part, is built in a staging folder while the submission and its recipe
wait in temporary siblings; then the report is swapped in, the recipe renamed, and the
submission renamed last: it is the commit point. A vote killed before that leaves no output,
only temporaries carrying its pid, which the next vote sweeps; so a rerun needs no --overwrite.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pandas as pd

from core import atomic
from core.errors import UserError
from core.names import path_inside
from ensemble.recipe import Recipe
from report import submission
from report.builder import check_report_target

T = TypeVar("T")


def default_paths(output_root: Path, name: str, out: str | None, report: str | None) -> tuple[Path, Path]:
    """The submission and report paths; `--name` must be one safe name, whatever else is given."""
    sub = Path(out) if out else path_inside(Path(output_root) / "submissions", name, "--name", ".csv")
    path_inside(Path(output_root) / "reports", name, "--name")  # the name is checked even with --report
    folder = Path(report) if report else Path(output_root) / "reports" / name
    return sub, folder


def recipe_path_of(submission_path: Path) -> Path:
    return submission_path.with_name(submission_path.stem + ".recipe.yaml")


def check_targets(submission_path: Path, report_dir: Path) -> None:
    """Refuse before any prediction work a target that can never be written: a submission or recipe path
    that is a folder, a device or a FIFO, a report target that is not a report folder. (Existing outputs
    are refused at commit time, after the predictions are cached, so a refused vote still warms the cache.)"""
    for path in (submission_path, recipe_path_of(submission_path)):
        problem = atomic.kind_problem(path)
        if problem:
            raise UserError(f"cannot write {path}: {problem} (nothing was changed)")
    check_report_target(report_dir)


def commit_vote(submission_path: Path, frame: pd.DataFrame, n_classes: int, info_csv: Path | None,
                recipe: Recipe, overwrite: bool, build_report: Callable[[], T],
                report_dir: Path | None = None) -> tuple[Path, T]:
    """Write the submission and recipe to temporaries, build the report, then commit all three.

    Every output the vote would replace (submission, recipe beside it, report folder) needs --overwrite."""
    recipe_path = recipe_path_of(submission_path)
    atomic.check_replaceable([submission_path, recipe_path] + ([report_dir] if report_dir else []), overwrite)
    for path in (submission_path, recipe_path):
        atomic.remove_dead_writers_temps(path)
    submission.validate(frame, n_classes, info_csv)
    # `with A, B` leaves B first: the report is swapped in inside, the recipe renamed next, the submission last.
    with atomic.atomic_path(submission_path, tagged=True) as sub_tmp, \
            atomic.atomic_path(recipe_path, tagged=True) as recipe_tmp:
        submission.write_checked(frame, sub_tmp, n_classes, info_csv, submission_path)
        recipe.to_yaml(recipe_tmp)
        report = build_report()
    return recipe_path, report
