"""The member registry: one YAML file, validated on read, written atomically under a lock.

Paths inside entries are relative to the registry file so a project folder can
move between machines and operating systems.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock

from core import atomic
from core.errors import UserError

VERSION = 1
REQUIRED = {
    "name": str,
    "arch": str,
    "classes": list,
    "weights": str,
    "sha256": str,
    "input": dict,
    "split": dict,
    "metrics": dict,
    "config": str,
    "created": str,
}


def _validate_entry(entry: Any, where: str) -> dict:
    if not isinstance(entry, dict):
        raise UserError(f"{where} must be a mapping, got {type(entry).__name__}")
    label = f"{where} ('{entry.get('name', '?')}')"
    for field, kind in REQUIRED.items():
        if field not in entry:
            raise UserError(f"{label} is missing field '{field}'")
        if not isinstance(entry[field], kind):
            raise UserError(f"{label} field '{field}' must be a {kind.__name__}")
    if not entry["classes"] or not all(isinstance(c, str) for c in entry["classes"]):
        raise UserError(f"{label} field 'classes' must be a non-empty list of strings")
    if not isinstance(entry["split"].get("name"), str) or not isinstance(entry["split"].get("sha256"), str):
        raise UserError(f"{label} field 'split' needs 'name' and 'sha256'")
    return entry


class Registry:
    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()
        self.lock = FileLock(str(self.path) + ".lock", timeout=120)

    def resolve(self, relative: str) -> Path:
        return (self.path.parent / Path(relative)).resolve()

    def relative(self, path: str | Path) -> str:
        """Store paths POSIX-style relative to the registry so they survive a move."""
        return Path(path).resolve().relative_to(self.path.parent).as_posix()

    def members(self) -> list[dict]:
        if not self.path.exists():
            raise UserError(f"no registry at {self.path}; train a member first")
        return self._parse(self.path.read_text(encoding="utf-8"))

    def _parse(self, text: str) -> list[dict]:
        if not text.strip():
            raise UserError(f"{self.path} is empty; expected 'version: {VERSION}' and a 'members' list")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise UserError(f"{self.path} is not valid YAML{where}") from err
        if not isinstance(data, dict) or "members" not in data:
            raise UserError(f"{self.path} must be a mapping with 'version' and 'members'")
        if data.get("version") != VERSION:
            raise UserError(f"{self.path} has version {data.get('version')!r}; this tool reads version {VERSION}")
        entries = data["members"] or []
        if not isinstance(entries, list):
            raise UserError(f"{self.path}: 'members' must be a list")
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            _validate_entry(entry, f"{self.path.name} member #{i + 1}")
            if entry["name"] in seen:
                raise UserError(f"{self.path.name}: member name '{entry['name']}' appears twice")
            seen.add(entry["name"])
        return entries

    def get(self, name: str) -> dict:
        members = self.members()
        for entry in members:
            if entry["name"] == name:
                return entry
        known = ", ".join(e["name"] for e in members) or "none"
        raise UserError(f"member '{name}' is not in {self.path} (registered: {known})")

    def _write(self, entries: list[dict]) -> None:
        text = yaml.safe_dump({"version": VERSION, "members": entries}, sort_keys=False, allow_unicode=True)
        atomic.write_text(self.path, text)

    def add(self, entry: dict) -> None:
        _validate_entry(entry, f"new entry '{entry.get('name', '?')}'")
        with self.lock:
            entries = self.members() if self.path.exists() else []
            if any(e["name"] == entry["name"] for e in entries):
                raise UserError(
                    f"member '{entry['name']}' is already in {self.path}; choose another name or remove it first"
                )
            self._write(entries + [entry])

    def remove(self, name: str) -> dict:
        with self.lock:
            entries = self.members()
            kept = [e for e in entries if e["name"] != name]
            if len(kept) == len(entries):
                self.get(name)  # raises the standard "not registered" message
            self._write(kept)
            return next(e for e in entries if e["name"] == name)

    def exists(self, name: str) -> bool:
        return self.path.exists() and any(e["name"] == name for e in self.members())
