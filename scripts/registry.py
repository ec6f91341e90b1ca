"""Look after the member registry.

    python -m scripts.registry list
    python -m scripts.registry show NAME
    python -m scripts.registry remove NAME [--yes]
    python -m scripts.registry verify [NAME]    # every entry's files and hashes; exits non-zero if any is broken
"""
from __future__ import annotations

import argparse

from core.cli import add_registry
from core.errors import UserError, cli_entry
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
    # lazy: the job imports pandas and the registry filelock (asyncio); --help must not wait for them
    from core.registry import Registry
    from jobs.registry import list_members, remove_member, show_member, verify_members
    settings = load_settings()
    registry = Registry.chosen(args.registry, settings)
    if args.command in ("show", "remove") and not args.name:
        raise UserError(f"'{args.command}' needs a member name")
    if args.command == "list":
        list_members(registry)
    elif args.command == "show":
        show_member(registry, args.name)
    elif args.command == "verify":
        verify_members(registry, settings, args.name)
    else:
        remove_member(registry, args.name, args.yes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
