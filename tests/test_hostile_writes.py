"""Hostile inputs, round three: writes that must never destroy a user's files (issue 28).

A vote or report replaces only a folder that carries the project's own marker, and only with
--overwrite; outputs are written only over regular files (never a FIFO or a device node); and every
file a command would replace (the recipe beside a submission too) counts for --overwrite.
Each case runs the script's main(argv) in-process on its own copy of the tiny trained project.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core import atomic
from core.errors import UserError
from test_bad_inputs import trained  # noqa: F401  (a fixture)
from test_names_sizes_and_torn_outputs import fails, project, succeeds  # noqa: F401  (project: a fixture)

# ---------------------------------------------------------------- a user's folder is never replaced

@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_vote_never_replaces_a_users_folder_that_holds_a_report_md(capsys, project, overwrite):
    folder = project.root / "d"
    folder.mkdir()
    (folder / "report.md").write_text("my notes")
    (folder / "thesis.txt").write_text("three years of work")
    fails(capsys, project, "vote", ["--members", "good", "--report", str(folder), *overwrite], str(folder),
          "not a report folder this project made", watched=(folder,))
    assert (folder / "thesis.txt").read_text() == "three years of work"


@pytest.mark.parametrize("script", ["vote", "report"])
def test_a_report_folder_the_project_made_is_replaced_only_with_overwrite(capsys, project, script):
    folder = project.root / "rep"
    argv = ["--members", "good", "--report", str(folder)] + (["--n-boot", "20"] if script == "report" else [])
    first = argv + (["--out", str(project.root / "a.csv")] if script == "vote" else [])
    succeeds(capsys, script, first)
    assert (folder / ".ensemble-report").is_file()
    (folder / "mine.txt").write_text("added later")
    again = argv + (["--out", str(project.root / "b.csv")] if script == "vote" else [])
    fails(capsys, project, script, again, str(folder), "--overwrite", watched=(folder,))
    assert (folder / "mine.txt").exists() and not (project.root / "b.csv").exists()


# ---------------------------------------------------------------- only regular files are replaced

def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("special", ["fifo", "link-to-dev-null"])
def test_an_output_that_is_not_a_regular_file_is_refused_even_with_overwrite(capsys, project, special):
    target = project.root / "n"
    if special == "fifo":
        _fifo(target)
    else:
        target.symlink_to("/dev/null")  # if this were replaced, only the link would go: safe to test as root
    fails(capsys, project, "vote", ["--members", "good", "--out", str(target), "--overwrite"], str(target),
          "not a regular file")
    assert not stat.S_ISREG(os.stat(target).st_mode)
    assert sorted(p.name for p in project.root.iterdir() if p.name.startswith("n")) == ["n"]  # nothing beside it


def test_atomic_writes_never_replace_a_fifo(tmp_path):
    (tmp_path / "w").mkdir()
    fifo = _fifo(tmp_path / "w" / "pipe")
    with pytest.raises(UserError, match="not a regular file"):
        atomic.write_text(fifo, "x")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert [p.name for p in fifo.parent.iterdir()] == ["pipe"]  # no temporary left behind


def test_a_fifo_that_appears_during_the_write_is_not_replaced(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(UserError, match="not a regular file"):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("data")
            _fifo(target)
    assert stat.S_ISFIFO(os.stat(target).st_mode)


# ---------------------------------------------------------------- every replaced file counts

def test_an_existing_recipe_beside_the_submission_needs_overwrite(capsys, project):
    out = project.root / "subs" / "sub.csv"
    out.parent.mkdir()
    recipe = out.with_name("sub.recipe.yaml")
    recipe.write_text("my hand-written recipe\n")
    fails(capsys, project, "vote", ["--members", "good", "--out", str(out), "--report", str(project.root / "r")],
          str(recipe), "--overwrite", watched=(out.parent,))
    assert recipe.read_text() == "my hand-written recipe\n" and not out.exists()
    succeeds(capsys, "vote", ["--members", "good", "--out", str(out), "--report", str(project.root / "r"),
                              "--overwrite"])
    assert recipe.read_text() != "my hand-written recipe\n" and out.is_file()
