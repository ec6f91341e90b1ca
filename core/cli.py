"""The arguments every script spells the same way, so `--registry`, `--members` and friends mean one thing.

Conventions (see README "Command-line conventions"): `--out FILE` is always a file, a folder is
`--report DIR`; `--overwrite` wherever an existing output would be replaced; exit 0 success,
1 checked and found problems, 2 usage or input error.
"""
from __future__ import annotations

import argparse

REGISTRY_HELP = "registry file (default: <output root>/registry.yaml)"


def add_registry(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", help=REGISTRY_HELP)


def add_members(parser: argparse.ArgumentParser, help: str = "member names from the registry",
                required: bool = False) -> None:
    parser.add_argument("--members", nargs="+", required=required, help=help)


def add_overwrite(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--overwrite", action="store_true", help=f"replace an existing {what}")
