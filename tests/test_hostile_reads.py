"""Hostile inputs, round three: reads that must stay bounded (issue 28).

Every file the project reads from a user is a regular file (a FIFO or /dev/zero is one line, not a
hang), of bounded size, parsed by the safe YAML loader with aliases refused; an imported .npz is
checked by its declared shapes and zip sizes before any array is read; a damaged prediction-cache
file is recomputed (an imported member's is a one-line error). In-process, on the tiny trained project.
"""
from __future__ import annotations

import io
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core import files
from core.errors import UserError
from test_bad_inputs import trained  # noqa: F401  (a fixture)
from test_names_sizes_and_torn_outputs import fails, project, succeeds  # noqa: F401  (project: a fixture)

BOMB = "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
    f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n" for i in range(8)) + \
    "rule: soft\nmembers: {good: 1.0}\nnote: *i\n"


@pytest.fixture
def fifo(tmp_path):
    """A FIFO with a guard: should a reader open it after all, a writer hands it a line and closes, so a
    failing test fails on its message instead of hanging; afterwards the unused writer is released."""
    path = tmp_path / "pipe"
    os.mkfifo(path)

    def feed():
        try:
            with open(path, "w") as fh:
                fh.write("name: x\n")
        except BrokenPipeError:  # released unread at the end: the project never opened it
            pass

    threading.Thread(target=feed, daemon=True).start()
    yield path
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # lets a still-waiting writer go
    os.close(fd)


# ---------------------------------------------------------------- recipes: bounded and alias-free

@pytest.mark.parametrize("script", ["vote", "report"])
def test_a_recipe_alias_bomb_is_refused_in_one_line(capsys, project, script):
    bomb = project.root / "bomb.yaml"
    bomb.write_text(BOMB)
    assert len(BOMB) < 1000
    fails(capsys, project, script, ["--recipe", str(bomb)] + (["--members", "good"] if script == "report" else []),
          str(bomb), "aliases")


def test_a_huge_recipe_is_refused_before_it_is_parsed(capsys, project):
    big = project.root / "big.recipe.yaml"
    big.write_text("rule: soft\nmembers: {good: 1.0}\nnote: '" + "x" * (9 << 20) + "'\n")
    fails(capsys, project, "vote", ["--recipe", str(big)], str(big), "MiB")


@pytest.mark.parametrize("text, culprit", [
    ("rule: soft\nmembers: !!python/object/apply:os.system ['true']\n", "recipe"),
    ("rule: soft\nmembers: {good: 1.0\n", "line"),
    ("rule: soft\nmembers: [good]\n", "members"),
    ("rule: stack\nmembers: {good: 1.0}\nstack: x\n", "stack"),
    ("rule: soft\nmembers: {good: 1.0}\ndecision_weights: 5\n", "decision_weights"),
    ("rule: soft\nmembers: {good: 1.0}\ndecision_weights: [1, 2]\n", "decision weights"),
    ("rule: stack\nmembers: {good: 1.0}\nstack: {coef: [[1, 0], [0, 1]], intercept: [0, 0]}\n", "stack"),
])
def test_a_damaged_recipe_is_one_line(capsys, project, text, culprit):
    path = project.root / "bad.recipe.yaml"
    path.write_text(text)
    fails(capsys, project, "vote", ["--recipe", str(path), "--out", str(project.root / "s.csv")], culprit)
    assert not (project.root / "s.csv").exists()


def test_the_safe_loader_refuses_aliases_but_reads_plain_yaml(tmp_path):
    assert files.parse_yaml("a: [1, 2]\nb: {c: d}\n", "x.yaml", "file") == {"a": [1, 2], "b": {"c": "d"}}
    with pytest.raises(UserError, match="aliases"):
        files.parse_yaml("a: &x [1]\nb: *x\n", "x.yaml", "file")


# ---------------------------------------------------------------- only regular files are read

def test_a_fifo_as_config_is_refused(capsys, project, fifo):
    fails(capsys, project, "train", ["--config", str(fifo)], str(fifo), "not a regular file")


def test_a_fifo_as_recipe_is_refused(capsys, project, fifo):
    fails(capsys, project, "vote", ["--recipe", str(fifo)], str(fifo), "not a regular file")


def test_a_fifo_as_registry_is_refused(capsys, project, fifo):
    fails(capsys, project, "vote", ["--members", "good", "--registry", str(fifo)], str(fifo), "not a regular file")


def test_dev_zero_as_registry_is_refused(capsys, project):
    fails(capsys, project, "vote", ["--members", "good", "--registry", "/dev/zero"], "/dev/zero",
          "not a regular file")


def test_a_fifo_as_local_settings_is_refused(capsys, project, fifo, monkeypatch):
    monkeypatch.setenv("VOTE_LOCAL_CONFIG", str(fifo))
    fails(capsys, project, "vote", ["--members", "good"], str(fifo), "not a regular file")


def test_a_folder_as_registry_is_refused(capsys, project):
    folder = project.root / "reg"
    folder.mkdir()
    fails(capsys, project, "vote", ["--members", "good", "--registry", str(folder)], str(folder), "folder")


# ---------------------------------------------------------------- imported .npz: bounded before reading

def _npy(shape: tuple[int, ...], dtype: str, payload: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue() + payload


def _foreign(project, path: Path, probs_npy: bytes) -> Path:
    with np.load(project.cached("val"), allow_pickle=False) as z:
        ids, classes = z["ids"], z["classes"]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, arr in (("ids", ids), ("classes", classes)):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr)
            archive.writestr(f"{name}.npy", buf.getvalue())
        archive.writestr("probs.npy", probs_npy)
    return path


def _import(path: Path) -> list[str]:
    return ["import", "--member", "foreign", "--split", "val", "--npz", str(path), "--like", "good"]


def test_an_npz_header_claiming_a_huge_array_is_refused_before_reading(capsys, project):
    npz = _foreign(project, project.root / "huge.npz", _npy((10 ** 11, 3), "<f4", b"\0" * 64))
    last = fails(capsys, project, "predict", _import(npz), str(npz), "probs.npy")
    assert "declares shape" in last


def test_an_npz_zip_bomb_is_refused_before_it_inflates(capsys, project):
    with np.load(project.cached("val"), allow_pickle=False) as z:
        n, c = z["probs"].shape
    npz = _foreign(project, project.root / "bomb.npz", _npy((n, c), "<f4", b"\0" * (64 << 20)))
    assert npz.stat().st_size < (1 << 20)
    fails(capsys, project, "predict", _import(npz), str(npz), "probs.npy")


# ---------------------------------------------------------------- damaged cache files

@pytest.mark.parametrize("damage", ["truncated", "zip-magic-and-junk"])
def test_a_damaged_prediction_cache_file_is_recomputed(capsys, project, damage):
    cached = project.cached("val")
    data = cached.read_bytes()
    cached.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"PK\x03\x04" + b"junk" * 100)
    succeeds(capsys, "vote", ["--members", "good", "--out", str(project.root / "s.csv"),
                              "--report", str(project.root / "r")])
    with np.load(cached, allow_pickle=False) as z:
        assert z["probs"].shape[0] > 0


def test_an_imported_members_damaged_file_is_one_line(capsys, project):
    npz = project.root / "foreign.npz"
    with np.load(project.cached("val"), allow_pickle=False) as z:
        np.savez(npz, ids=z["ids"], probs=z["probs"], classes=z["classes"])
    succeeds(capsys, "predict", _import(npz))
    stored = project.out / "cache" / "predictions" / "foreign" / "val.npz"
    stored.write_bytes(b"PK\x03\x04" + b"junk" * 100)
    fails(capsys, project, "report", ["--members", "good", "foreign", "--n-boot", "20"], str(stored))
