"""Look after the member registry.

    python -m scripts.registry list
    python -m scripts.registry show NAME
    python -m scripts.registry remove NAME [--yes]
"""
from __future__ import annotations

import argparse
import sys

import pandas as pd
import yaml

from core.errors import UserError, cli_entry
from core.registry import Registry
from core.settings import load_settings


def _list(registry: Registry) -> None:
    rows = [{"name": e["name"], "arch": e["arch"], "val_f1_macro": e["metrics"].get("val_f1_macro"),
             "val_acc": e["metrics"].get("val_acc"), "split": f"{e['split']['name']}#{e['split'].get('fold')}",
             "created": e["created"]} for e in registry.members()]
    if not rows:
        print(f"{registry.path}: no members")
        return
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def _remove(registry: Registry, name: str, yes: bool) -> None:
    registry.get(name)
    if not yes:
        if not sys.stdin.isatty():
            raise UserError(f"removing '{name}' needs confirmation; pass --yes")
        if input(f"remove '{name}' from {registry.path}? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return
    registry.remove(name)
    print(f"removed {name} (its run folder is kept)")


@cli_entry
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.registry", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["list", "show", "remove"])
    parser.add_argument("name", nargs="?")
    parser.add_argument("--yes", action="store_true")
    parser.add_argument("--registry", help="registry file (default: <output root>/registry.yaml)")
    args = parser.parse_args(argv)
    registry = Registry(args.registry or load_settings().registry)
    if args.command != "list" and not args.name:
        raise UserError(f"'{args.command}' needs a member name")
    if args.command == "list":
        _list(registry)
    elif args.command == "show":
        print(yaml.safe_dump(registry.get(args.name), sort_keys=False), end="")
    else:
        _remove(registry, args.name, args.yes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
