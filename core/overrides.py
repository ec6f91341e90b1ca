"""Command-line overrides (`train.epochs=3 model.arch=resnet18`) as a nested dict, merged over a config file.

Values are read by the project's one YAML reader (core.files: safe, aliases refused), so an
override cannot expand `&x [*x, *x]` any more than a config file can."""
from __future__ import annotations

from typing import Any

import yaml

from core import files
from core.errors import UserError


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise UserError(f"override '{dotted}': '{key}' is not a section")
    node[keys[-1]] = value


def _value(key: str, raw: str) -> Any:
    """The override's value as YAML; text YAML cannot parse (`a: b: c`) stays the text it is."""
    if raw == "":
        return None
    try:
        return files.load_yaml_text(raw)
    except files.YamlAliasError:
        raise UserError(f"override '{key}=…': YAML aliases (*name) are not allowed") from None
    except yaml.YAMLError:
        return raw


def parse_overrides(items: list[str]) -> dict:
    """Turn `train.epochs=3 model.arch=resnet18` into a nested dict, values parsed as YAML."""
    tree: dict = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"override '{item}' must look like key=value (for example train.epochs=3)")
        key, raw = item.split("=", 1)
        key = key.strip()
        _set_dotted(tree, key, _value(key, raw))
    return tree


def merge(base: dict, extra: dict) -> dict:
    """`base` with `extra` laid over it, section by section (an override replaces one key, not its section)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged
