"""Folder safety: a report folder is replaced whole, and only a folder this project made is ever replaced."""
from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from core import atomic, leftovers

# Written into every report folder: only a folder that carries it is ever replaced, so `--name ../runs`
# or `--report my-thesis` can never swap a user's or the project's folder for a report.
MARKER = ".ensemble-report"


def is_report_folder(folder: Path) -> bool:
    """True for a report folder this project made: it holds MARKER."""
    return (Path(folder) / MARKER).is_file()


def check_report_target(out_dir: Path) -> Path:
    """Refuse a report folder that exists but is not a report: a file, or any folder without MARKER
    (whether it may be replaced at all, --overwrite, is for the command to check: atomic.check_replaceable)."""
    return atomic.check_folder_target(out_dir, MARKER, "report folder")


def sweep_stale_stages(out_dir: Path) -> list[Path]:
    """Remove the staging (and set-aside) folders of builds of `out_dir` that were killed midway."""
    removed = []
    for path in leftovers.stale_siblings(out_dir, (".tmp", ".old")):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def staged_folder(out_dir: Path) -> Iterator[Path]:
    """Build in a hidden sibling folder and swap it in only when everything was written.

    A failure leaves the previous report as it was; stale files of an earlier report
    (e.g. the confusion PNG of a member no longer voted) do not survive a rebuild; the
    staging folders of builds that were killed are swept; a folder that is not a report
    is never replaced.
    """
    out_dir = check_report_target(Path(out_dir))
    sweep_stale_stages(out_dir)
    with atomic.atomic_folder(out_dir) as stage:  # a failure says what to do and leaves the old report
        (stage / MARKER).write_text("This folder is an ensemble report; a rebuild replaces it whole.\n",
                                    encoding="utf-8")
        yield stage
        check_report_target(out_dir)  # again: something may have appeared there while the report was built
