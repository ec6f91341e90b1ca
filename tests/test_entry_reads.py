"""Registry entries are read through `core.entry.RegistryEntry`'s attributes only.

A raw read (`entry["split"]["fold"]`, `entry.get("imported")`) skips the one place that checks
a field, and a second spelling of a field drifts; this test finds such reads with `ast` in the
production code, and proves the typed entry writes back exactly what it read.
"""
from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import yaml

from core.entry import DistilledFrom, OriginRef, RegistryEntry, SplitRef, Tracking, WeightsRef
from core.registry import Registry
from registry_fixtures import SPLIT_SHA, entry, write_registry

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ["core", "imagedata", "modeling", "members", "predict", "ensemble", "audit", "report", "launch", "jobs", "scripts",
              "benchmarks"]
# The two modules that turn the stored mapping into the type (and back).
EXEMPT = {ROOT / "core" / "entry.py", ROOT / "core" / "entry_parts.py"}
# How the code names a registry entry (or a collection of them) when it holds one.
ENTRY_NAME = re.compile(r"^(e|entry|entries|first|ref|registered|stored_entry|\w+_entry|\w+_entries)$")
FIELDS = {f.name for cls in (RegistryEntry, SplitRef, WeightsRef, OriginRef, DistilledFrom, Tracking)
          for f in dataclasses.fields(cls)} - {"extra"}


def _key(node: ast.AST) -> str | None:
    """The string key of `x["key"]` or `x.get("key", ...)`, with the receiver, else None."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return node.slice.value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "pop")
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return node.args[0].value
    return None


def _receiver(node: ast.AST) -> ast.AST:
    return node.value if isinstance(node, ast.Subscript) else node.func.value


def _names_an_entry(receiver: ast.AST) -> bool:
    """Whether the expression a key is read from is an entry: by the name it goes by, or a registry read."""
    for part in ast.walk(receiver):
        if isinstance(part, ast.Name) and ENTRY_NAME.match(part.id):
            return True
        if isinstance(part, ast.Attribute) and part.attr in ("members", "to_dict", "entry"):
            return True
        if (isinstance(part, ast.Call) and isinstance(part.func, ast.Attribute) and part.func.attr == "get"
                and isinstance(part.func.value, ast.Name) and "registry" in part.func.value.id):
            return True
    return False


def raw_entry_reads(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        key = _key(node)
        if key in FIELDS and _names_an_entry(_receiver(node)):
            found.append((node.lineno, ast.get_source_segment(source, node)))
    return found


def test_no_production_module_reads_a_registry_entry_by_key():
    offenders = [f"{path.relative_to(ROOT)}:{line}: {text}"
                 for package in PRODUCTION for path in sorted((ROOT / package).rglob("*.py")) if path not in EXEMPT
                 for line, text in raw_entry_reads(path.read_text(encoding="utf-8"))]
    assert not offenders, "read these through RegistryEntry attributes:\n" + "\n".join(offenders)


def test_the_scan_finds_each_raw_spelling_it_forbids():
    source = ('entry["split"]["fold"]\nentries[0].get("imported")\nfirst["classes"]\n'
              'registry.get(name)["weights"]\nregistry.members()[0]["arch"]\nteacher_entry.get("distilled_from")\n'
              'table["fold"]\nrow["name"]\n')  # the last two are not entries: a DataFrame column and a table row
    assert sorted(line for line, _ in raw_entry_reads(source)) == [1, 1, 2, 3, 4, 5, 6]


def test_a_registry_written_back_is_byte_for_byte_the_file_it_read(tmp_path):
    """Every optional field, each nested in its own type, survives read → typed → write unchanged."""
    rich = entry("rich", run="runs/rich", val_probs="runs/rich/val_probs.npz", git="1a2b3c4", pretrained="scratch",
                 data={"source": "folders", "root": "data/train", "test": None}, composite=None,
                 split={"name": "holdout-s42", "sha256": SPLIT_SHA, "fold": 0, "n_folds": 5, "duplicates": "near<=8",
                        "merged_groups": 3},
                 tracking={"wandb_run": None, "group": "demo"},
                 weights_origin={"kind": "member", "source": "base", "file": "/x/best.safetensors", "sha256": "c" * 64},
                 ema={"weights": "runs/rich/best_ema.safetensors", "sha256": "e" * 64, "decay": 0.999,
                      "metrics": {"val_f1_macro": 0.5, "best_epoch": 2}},
                 distilled_from={"recipe": "recipes/r.yaml", "sha256": "d" * 64, "members": ["a", "b"],
                                 "rule": "soft", "targets": "in-sample", "teacher_val_f1_macro": 0.9},
                 future_field={"kept": True})
    scratch = entry("scratch", weights_origin={"kind": "scratch", "source": None, "file": None, "sha256": None})
    imported = {k: v for k, v in entry("ext").items() if k not in ("weights", "sha256")}
    imported |= {"kind": "imported", "arch": "imported", "imported": {"reference": "rich", "tta": "none"}}
    path = write_registry(tmp_path / "registry.yaml", [rich, scratch, imported])
    registry = Registry(path)
    before = yaml.safe_load(path.read_text())
    registry.add(entry("added"))  # read, typed, written back with one more
    after = yaml.safe_load(path.read_text())
    assert after["members"][:3] == before["members"]
    assert [list(e) for e in after["members"][:3]] == [list(e) for e in before["members"]]
    registry.remove("added")
    assert yaml.safe_load(path.read_text()) == before

    typed = registry.get("rich")
    assert typed.split.duplicates == "near<=8" and typed.split.merged_groups == 3 and typed.split.n_folds == 5
    assert typed.weights_origin.source == "base" and typed.distilled_from.members == ("a", "b")
    assert typed.group == "demo" and typed.ema.decay == 0.999 and typed.extra == {"future_field": {"kept": True}}
    assert registry.get("ext").is_imported and registry.get("ext").imported.reference == "rich"
