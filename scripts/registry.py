"""Look after the member registry.

    python -m scripts.registry list
    python -m scripts.registry show NAME
    python -m scripts.registry remove NAME [--yes]
    python -m scripts.registry verify [NAME]    # every entry's files and hashes; exits non-zero if any is broken
"""
from __future__ import annotations

import argparse

from core.cli import add_registry
from core.errors import cli_entry
from core.settings import load_settings


@cli_entry
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.registry", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["list", "show", "remove", "verify"])
    parser.add_argument("name", nargs="?")
    parser.add_argument("--yes", action="store_true", help="remove without asking")
    add_registry(parser)
    args = parser.parse_args(argv)
    # lazy: the job imports pandas; --help must not wait for it
    from jobs.registry import RegistryRequest, registry_command
    registry_command(RegistryRequest(args.command, args.name, args.yes, args.registry), load_settings())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
