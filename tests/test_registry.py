"""The registry file: duplicate names, the schema, and the `scripts.registry` commands a user runs."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest
import yaml

from core.errors import UserError
from core.registry import Registry
from helpers import REPO, run_script
from registry_fixtures import SPLIT_SHA, entry, real_member, write_registry


@pytest.fixture
def registry(isolated_env) -> Registry:
    return Registry(isolated_env / "registry.yaml")


def test_a_duplicate_name_is_refused_and_the_first_entry_kept(registry):
    registry.add(entry("r18-s0", arch="resnet18"))
    before = registry.path.read_bytes()
    with pytest.raises(UserError, match=r"member 'r18-s0' is already in .*registry.yaml; choose another name"):
        registry.add(entry("r18-s0", arch="convnext_nano"))
    assert registry.path.read_bytes() == before
    assert registry.get("r18-s0").arch == "resnet18"


def test_a_hand_made_duplicate_is_reported_on_read(registry):
    write_registry(registry.path, [entry("a"), entry("b"), entry("a")])
    with pytest.raises(UserError, match="member name 'a' appears twice"):
        registry.members()


def _without(field: str) -> dict:
    bad = entry("m")
    del bad[field]
    return bad


SCHEMA_CASES = {
    "missing field": (_without("sha256"), "field 'sha256'"),
    "wrong type": (entry("m", classes="0,1,2"), "field 'classes' must be a list"),
    "short hash": (entry("m", sha256="3f5a"), "field 'sha256' must be 64 lowercase hex"),
    "hash not hex": (entry("m", sha256="z" * 64), "field 'sha256' must be 64 lowercase hex"),
    "metric not a number": (entry("m", metrics={"val_f1_macro": "high"}), "field 'metrics' 'val_f1_macro' must be a number"),
    "metric a bool": (entry("m", metrics={"best_epoch": True}), "field 'metrics' 'best_epoch' must be a number"),
    "absolute weights": (entry("m", weights="/etc/passwd"), "field 'weights' must be a relative POSIX path"),
    "windows path": (entry("m", config="C:\\runs\\config.yaml"), "field 'config' must be a relative POSIX path"),
    "escaping path": (entry("m", weights="../elsewhere/best.safetensors"), "field 'weights' may not contain '..'"),
    "escaping run": (entry("m", run="runs/../../x"), "field 'run' may not contain '..'"),
    "name with a slash": (entry("a/evil"), "field 'name' may not contain '/'"),
    "repeated class": (entry("m", classes=["cat", "dog", "cat"]), "field 'classes' lists a class twice"),
    "bad input size": (entry("m", input={"size": [0, 16], "mean": [0, 0, 0], "std": [1, 1, 1]}), "field 'input' 'size'"),
    "split hash": (entry("m", split={"name": "holdout", "sha256": "abc", "fold": 0}), "field 'split' 'sha256'"),
    "split fold": (entry("m", split={"name": "holdout", "sha256": SPLIT_SHA, "fold": -1}), "field 'split' 'fold'"),
    "escaping ema weights": (entry("m", ema={"weights": "../x.safetensors", "sha256": SPLIT_SHA}),
                             "field 'ema' 'weights' may not contain '..'"),
    "not a mapping": ("just a string", "member #2 must be a mapping"),
}


@pytest.mark.parametrize("bad, expected", SCHEMA_CASES.values(), ids=SCHEMA_CASES.keys())
def test_a_schema_error_names_the_entry_and_the_field(registry, bad, expected):
    write_registry(registry.path, [entry("fine"), bad])
    with pytest.raises(UserError) as caught:
        registry.members()
    message = str(caught.value)
    assert expected in message
    assert "registry.yaml member #2" in message
    if isinstance(bad, dict) and "name" in bad:
        assert f"('{bad['name']}')" in message


def test_a_new_entry_is_validated_before_anything_is_written(registry):
    with pytest.raises(UserError, match="new entry 'm'.* field 'sha256'"):
        registry.add(entry("m", sha256="not-a-hash"))
    assert not registry.path.exists()


@pytest.mark.parametrize("text, expected", [
    ("version: 1\nmembers:\n  - name: a\n   arch: x\n", r"is not valid YAML at line 4 \(\w"),
    ("", "is empty; expected 'version: 1'"),
    ("version: 2\nmembers: []\n", "has version 2; this tool reads version 1"),
    ("- a\n- b\n", "must be a mapping with 'version' and 'members'"),
])
def test_a_broken_registry_file_is_one_line(registry, text, expected):
    registry.path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=expected):
        registry.members()


def test_paths_outside_the_registry_folder_are_refused(registry, tmp_path):
    assert registry.relative(registry.path.parent / "runs" / "x") == "runs/x"
    with pytest.raises(UserError, match="is outside the registry's folder"):
        registry.relative(tmp_path / "elsewhere" / "best.safetensors")


def test_a_registry_outside_the_output_root_is_refused_before_training(isolated_env, tmp_path):
    from core.config import load_config
    from core.settings import load_settings
    from jobs.train import train_member

    elsewhere = tmp_path / "elsewhere" / "registry.yaml"
    with pytest.raises(UserError, match="is outside the registry's folder"):
        train_member(load_config(None, ["name=lost"]), load_settings(), registry_path=elsewhere)
    assert not (isolated_env / "runs").exists() and not elsewhere.exists()


def test_list_show_and_remove_with_yes(registry):
    registry.add(entry("alpha"))
    registry.add(entry("beta"))
    listed = run_script("registry", "list").stdout
    assert "alpha" in listed and "beta" in listed
    shown = yaml.safe_load(run_script("registry", "show", "beta").stdout)
    assert shown == entry("beta")
    removed = run_script("registry", "remove", "alpha", "--yes")
    assert "removed alpha" in removed.stdout
    assert [e.name for e in registry.members()] == ["beta"]


def _registry_cli(*args: str, stdin) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "scripts.registry", *args], cwd=REPO, env=env, stdin=stdin,
                          capture_output=True, text=True, timeout=60)


def test_remove_without_yes_needs_confirmation(registry):
    registry.add(entry("keep-me"))
    refused = _registry_cli("remove", "keep-me", stdin=subprocess.DEVNULL)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == "error: removing 'keep-me' needs confirmation; pass --yes"
    assert registry.exists("keep-me")


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize("answer, kept", [("n\n", True), ("y\n", False)])
def test_remove_asks_at_a_terminal(registry, answer, kept):
    registry.add(entry("asked"))
    leader, follower = os.openpty()
    try:
        os.write(leader, answer.encode())
        proc = _registry_cli("remove", "asked", stdin=follower)
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 0, proc.stderr
    assert "remove 'asked'" in proc.stdout
    assert registry.exists("asked") is kept


def test_a_missing_member_is_named_with_the_known_ones(registry):
    registry.add(entry("alpha"))
    proc = run_script("registry", "show", "alhpa", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("member 'alhpa' is not in " + str(registry.path) + " (registered: alpha)")


def test_verify_passes_a_sound_registry_and_names_every_broken_member(registry, isolated_env):
    out = isolated_env
    members = {name: real_member(out, name) for name in ("sound", "swapped", "no-config", "crashed", "bad-split")}
    for member in members.values():
        registry.add(member)
    assert "5 member(s) verified" in run_script("registry", "verify").stdout

    weights = registry.resolve(members["swapped"]["weights"])
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    registry.resolve(members["no-config"]["config"]).unlink()
    run = registry.resolve(members["crashed"]["run"])
    run.rename(run.with_name(run.name.replace("f1-0.5000", "incomplete")))
    entries = registry.members()
    entries[-1] = replace(entries[-1], split=replace(entries[-1].split, sha256="0" * 64))
    registry._write(entries)

    proc = run_script("registry", "verify", check=False)
    assert proc.returncode == 1  # checked and found problems (2 is kept for usage errors)
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 4 of 5 member(s)") and "Traceback" not in proc.stderr
    for name in ("swapped", "no-config", "crashed", "bad-split"):
        assert f"BROKEN {name}" in proc.stdout and name in last
    assert "ok     sound" in proc.stdout
    assert "has sha256" in proc.stdout and "config.yaml is missing" in proc.stdout
    assert "does not exist" in proc.stdout or "is missing" in proc.stdout  # the renamed run folder
    assert "split file" in proc.stdout
    # One member can be checked on its own.
    assert run_script("registry", "verify", "sound").returncode == 0
