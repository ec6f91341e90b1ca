"""The arguments every script spells the same way, so `--registry`, `--members` and friends mean one thing.

Conventions (see README "Command-line conventions"): `--out FILE` is always a file, a folder is
`--report DIR`; `--overwrite` wherever an existing output would be replaced; exit 0 success,
1 checked and found problems, 2 usage or input error.
"""
from __future__ import annotations

import argparse

from core.errors import UserError
from core.extensions import POINTS

REGISTRY_HELP = "registry file (default: <output root>/registry.yaml)"


def extension_help() -> str:
    """The names each extension point offers, for a script's --help (read from the registries, not imported)."""
    return "choices registered in this checkout:\n" + "\n".join(
        f"  {key}: {', '.join(point.listed())}" for key, point in POINTS.items())


def add_registry(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", help=REGISTRY_HELP)


def add_members(parser: argparse.ArgumentParser, help: str = "member names from the registry",
                required: bool = False) -> None:
    parser.add_argument("--members", nargs="+", required=required, help=help)


def add_overwrite(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--overwrite", action="store_true", help=f"replace an existing {what}")


def check_new_or_resumed(args: argparse.Namespace, new: str) -> None:
    """--config FILE (a new run) or --resume RUN_FOLDER (continue one), never both; a pause needs N >= 1."""
    if (args.config is None) == (args.resume is None):
        raise UserError(f"give either --config FILE (a new {new}) or --resume RUN_FOLDER (continue one)")
    if args.stop_after_epoch is not None and args.stop_after_epoch < 1:
        raise UserError("--stop-after-epoch must be >= 1")
