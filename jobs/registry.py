"""The registry jobs: list, show, remove and verify members (see scripts/registry.py).

Each prints as it goes (verify names every entry before it fails; remove may ask first)."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from core.entry import RegistryEntry
from core.errors import ProblemsFound, UserError
from core.hashing import sha256_file
from core.registry import Registry
from core.settings import Settings


@dataclass
class RegistryRequest:
    command: str                 # list | show | remove | verify
    name: str | None = None      # the member (show and remove need one; verify checks all without)
    yes: bool = False            # remove without asking
    registry: str | None = None


@dataclass
class RegistryResult:
    names: list[str]             # the members listed, shown, removed or verified


def registry_command(req: RegistryRequest, settings: Settings) -> RegistryResult:
    registry = Registry.chosen(req.registry, settings)
    if req.command in ("show", "remove") and not req.name:
        raise UserError(f"'{req.command}' needs a member name")
    if req.command == "list":
        return RegistryResult(list_members(registry))
    if req.command == "show":
        show_member(registry, req.name)
        return RegistryResult([req.name])
    if req.command == "verify":
        return RegistryResult(verify_members(registry, settings, req.name))
    return RegistryResult([req.name] if remove_member(registry, req.name, req.yes) else [])


def list_members(registry: Registry) -> list[str]:
    rows = [{"name": e.name, "arch": e.arch, "val_f1_macro": e.metrics.get("val_f1_macro"),
             "val_acc": e.metrics.get("val_acc"), "split": f"{e.split.name}#{e.split.fold}",
             "created": e.created} for e in registry.members()]
    if not rows:
        print(f"{registry.path}: no members")
        return []
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return [row["name"] for row in rows]


def remove_member(registry: Registry, name: str, yes: bool) -> bool:
    registry.get(name)
    if not yes:
        if not sys.stdin.isatty():
            raise UserError(f"removing '{name}' needs confirmation; pass --yes")
        if input(f"remove '{name}' from {registry.path}? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return False
    registry.remove(name)
    print(f"removed {name} (its run folder is kept)")
    return True


def _missing(path: Path, kind: str = "file") -> None:
    raise UserError(f"{kind} {path} is missing")


def _check_weights(path: Path, sha256: str) -> None:
    # Imported here so list/show/remove stay quick: only verify needs torch and safetensors.
    from modeling.checkpoint import inspect_safetensors, load_state_dict

    (inspect_safetensors if path.suffix == ".safetensors" else load_state_dict)(path, expected_sha256=sha256)


def _check_config(path: Path) -> None:
    from core.config import load_config

    if not path.is_file():
        _missing(path)
    load_config(path)


def _check_run(path: Path) -> None:
    from members.run_folder import INCOMPLETE

    if not path.is_dir():
        _missing(path, "folder")
    if path.name.endswith(INCOMPLETE):
        raise UserError(f"run folder {path} is marked incomplete")


def _check_split(path: Path, sha256: str) -> None:
    if not path.is_file():
        _missing(path)
    actual = sha256_file(path)
    if actual != sha256:
        raise UserError(f"split file {path} has sha256 {actual[:12]}…, registry says {sha256[:12]}…")


def entry_problems(registry: Registry, entry: RegistryEntry, settings: Settings) -> list[str]:
    """Everything wrong with one entry's files; an empty list means it can be loaded and voted."""
    checks = [("weights", lambda: _check_weights(registry.resolve(entry.weights), entry.sha256)),
              ("config", lambda: _check_config(registry.resolve(entry.config))),
              ("split", lambda: _check_split(settings.splits / f"{entry.split.name}.csv", entry.split.sha256))]
    if entry.ema:
        checks.append(("ema", lambda: _check_weights(registry.resolve(entry.ema.weights), entry.ema.sha256)))
    if entry.run:
        checks.append(("run", lambda: _check_run(registry.resolve(entry.run))))
    if entry.val_probs:
        path = registry.resolve(entry.val_probs)
        checks.append(("val_probs", lambda: None if path.is_file() else _missing(path)))
    found = []
    for what, check in checks:
        try:
            check()
        except UserError as err:
            found.append(f"{what}: {err}")
        except OSError as err:
            found.append(f"{what}: cannot read {err.filename or ''} ({err.strerror})")
    return found


def verify_members(registry: Registry, settings: Settings, name: str | None) -> list[str]:
    entries = [registry.get(name)] if name else registry.members()
    broken = {}
    for entry in entries:
        problems = entry_problems(registry, entry, settings)
        if problems:
            broken[entry.name] = problems
            print(f"BROKEN {entry.name}")
            for problem in problems:
                print(f"  {problem}")
        else:
            print(f"ok     {entry.name}")
    if broken:
        raise ProblemsFound(f"{len(broken)} of {len(entries)} member(s) in {registry.path} are broken: "
                        f"{', '.join(broken)} (details above)")
    print(f"{len(entries)} member(s) verified: weights hashes, configs, run folders and split files match")
    return [entry.name for entry in entries]


def show_member(registry: Registry, name: str) -> None:
    print(yaml.safe_dump(registry.get(name).to_dict(), sort_keys=False), end="")
