"""Hostile text in report.md, and hostile machine settings (output_root)."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from core.errors import UserError
from core.settings import load_settings
from report.page import Code, Page, Section, Table, to_markdown

HOSTILE = "cat\n```\n<img src=x onerror=alert(1)>\n| x |"


def _fences(markdown: str) -> list[tuple[int, str]]:
    """(line, fence) of each opening and closing fence, as CommonMark pairs them: a block opened by n
    backticks is closed only by a line of at least n backticks."""
    found, opened = [], None
    for i, line in enumerate(markdown.splitlines()):
        if re.fullmatch(r"`{3,}", line) and (opened is None or len(line) >= len(opened)):
            found.append((i, line))
            opened = None if opened else line
    return found


def test_a_class_name_cannot_break_out_of_its_code_fence_or_table():
    frame = pd.DataFrame({"class": [HOSTILE, "dog"], "recall": [0.5, 1.0]})
    page = Page("Report", [], [Section("classes", "Classes", [Code(f"report for {HOSTILE}\n"), Table(frame)])])
    markdown = to_markdown(page)
    fences = _fences(markdown)
    assert len(fences) == 2 and fences[0][1] == fences[1][1]          # one block, closed only by its own fence
    inside = markdown.splitlines()[fences[0][0] + 1:fences[1][0]]
    assert "```" in inside and "<img src=x onerror=alert(1)>" in inside   # the text kept literally, inside
    outside = [line for i, line in enumerate(markdown.splitlines()) if not fences[0][0] <= i <= fences[1][0]]
    assert not any("<img" in line for line in outside)                 # no raw HTML outside the fence
    rows = [line for line in outside if line.startswith("| ")]
    assert len(rows) == 3 and all(row.count(" | ") == 1 for row in rows)  # header + 2 rows, 2 cells each
    assert "&lt;img src=x onerror=alert(1)&gt;" in rows[1]


@pytest.fixture
def settings_env(monkeypatch, tmp_path):
    for var in ("VOTE_OUTPUT_ROOT", "VOTE_DATA_ROOT", "VOTE_WANDB_ENTITY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VOTE_LOCAL_CONFIG", str(tmp_path / "local.yaml"))
    return tmp_path


def test_output_root_that_is_a_number_is_one_line(settings_env):
    (settings_env / "local.yaml").write_text("output_root: 12345\n")
    with pytest.raises(UserError, match="setting output_root .* must be a folder path, not int 12345"):
        load_settings()


def test_output_root_pointing_at_a_file_is_one_line(settings_env, monkeypatch):
    target = settings_env / "notes.txt"
    target.write_text("mine\n")
    monkeypatch.setenv("VOTE_OUTPUT_ROOT", str(target))
    with pytest.raises(UserError, match=f"setting output_root .* is {target}, which is a file, not a folder"):
        load_settings()
    assert target.read_text() == "mine\n"


def test_a_5000_character_name_is_refused_before_any_work_in_a_short_line(tmp_path):
    from tests.helpers import run_script
    out = tmp_path / "fresh-output"
    proc = run_script("train", "--config", "configs/digits/resnet18.yaml", "name=" + "x" * 5000,
                      env={"VOTE_OUTPUT_ROOT": str(out)}, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "is longer than 200 characters" in lines[0] and "(5000 characters)" in lines[0]
    assert len(lines[0]) < 300
    assert not out.exists()          # refused before the data scan: nothing made
