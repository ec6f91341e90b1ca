"""User-given names that become paths: the one check every such name passes.

A `--name`, an imported `--member`, a registry entry's `split.name` and an ImageID of
info.csv each name one file or folder inside a folder the project owns. Each must be a
single plain path component (no '/', '\\', ':', no leading '.', not '.' or '..', no
control characters), so `folder / name` can never point outside `folder`: not through
'..', not through an absolute path, not onto a hidden staging file of the project.
"""
from __future__ import annotations

import os
from pathlib import Path

from core.errors import UserError

FORBIDDEN = "/\\:"
MAX_LENGTH = 200  # most file systems allow 255 bytes per component; leave room for suffixes


def name_problem(name: object) -> str | None:
    """Why `name` cannot be a single path component, or None if it can."""
    if not isinstance(name, str):
        return f"must be text, not {type(name).__name__}"
    if not name.strip():
        return "is empty"
    if name in (".", ".."):
        return "may not be '.' or '..'"
    if name.startswith("."):
        return "may not start with '.' (hidden names are the project's temporary files)"
    if any(ch in name for ch in FORBIDDEN):
        return "may not contain '/', '\\' or ':' (it names one file or folder, not a path)"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "may not contain control characters"
    if name != name.strip():
        return "may not start or end with a space"
    if len(name) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    return None


def member_name_problem(name: object) -> str | None:
    """Why `name` cannot name a member, or None. The one rule for a config's `name`, a registry entry's
    name and `predict import --member`: one safe path component without white space (it names run
    folders, cache folders and wandb runs, and is typed on command lines)."""
    problem = name_problem(name)
    if problem is None and any(ch.isspace() for ch in str(name)):
        problem = "may not contain spaces or tabs"
    return problem


def shown(name: object, cut: int = 60) -> str:
    """`name` quoted for a message; one longer than the rule allows is cut short (a 5,000-character name
    would fill the screen), any other is shown whole (a path given as a name must be recognisable)."""
    text = repr(name)
    return text if len(str(name)) <= MAX_LENGTH else f"{text[:cut]}... ({len(str(name))} characters)"


def check_member_name(name: object, what: str) -> str:
    problem = member_name_problem(name)
    if problem:
        raise UserError(f"{what} {shown(name)} {problem}")
    return str(name)


def check_name(name: object, what: str) -> str:
    """Refuse a name that is not one safe path component; `what` names it in the message (e.g. "--name")."""
    problem = name_problem(name)
    if problem:
        raise UserError(f"{what} {shown(name)} {problem}")
    return str(name)


def path_inside(folder: str | Path, name: object, what: str, suffix: str = "") -> Path:
    """`folder / (name + suffix)` after checking the name, and checking the result stays inside `folder`."""
    check_name(name, what)
    folder = Path(folder)
    path = folder / f"{name}{suffix}"
    # Belt and braces: a single safe component cannot leave the folder; this keeps it so if the rules change.
    if os.path.dirname(os.path.normpath(path)) != os.path.normpath(folder):
        raise UserError(f"{what} {name!r} would point outside {folder}")
    return path
