"""Typed member configuration: YAML plus `key=value` overrides, validated by pydantic against the
dataclasses of core.config_schema, then range-checked by core.config_values.

Unknown keys are refused with a suggestion, bad values name the key, the value and what is expected,
and every message says where the value came from (the file, or the command-line overrides).
Other modules import the config's names from here."""
from __future__ import annotations

import dataclasses
import difflib
import functools
from pathlib import Path
from typing import Any, get_type_hints

from pydantic import ConfigDict, TypeAdapter, ValidationError

from core import config_schema, files
from core.config_schema import (
    CHOICES,
    AugmentConfig,
    DataConfig,
    DistillConfig,
    EarlyStoppingConfig,
    MemberConfig,
    ModelConfig,
    PseudoConfig,
    SplitConfig,
    TrackingConfig,
    TrainConfig,
    WandbConfig,
)
from core.config_values import check_values
from core.errors import UserError
from core.extensions import POINTS
from core.overrides import merge, parse_overrides

__all__ = [
    "AugmentConfig", "DataConfig", "DistillConfig", "EarlyStoppingConfig", "MemberConfig", "ModelConfig",
    "PseudoConfig", "SplitConfig", "TrackingConfig", "TrainConfig", "WandbConfig",
    "load_config", "parse_overrides", "read_yaml", "to_dict",
]


def _unknown_key(key: str, known: list[str], origin: str) -> UserError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"
    return UserError(f"unknown config key '{key}' in {origin}{hint}")


def _schemas() -> list[type]:
    """Every config dataclass of the schema module (sections added later are picked up too)."""
    return [v for v in vars(config_schema).values() if isinstance(v, type) and dataclasses.is_dataclass(v)
            and v.__module__ == config_schema.__name__]


@functools.lru_cache(maxsize=1)
def _adapter() -> TypeAdapter:
    # pydantic validates the dataclasses as they are: unknown keys refused, numbers accepted where a
    # string is expected (a member may be called 7), nothing guessed from the text of type hints.
    for schema in _schemas():
        schema.__pydantic_config__ = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    return TypeAdapter(MemberConfig)


def _section(loc: tuple) -> type:
    """The dataclass a location (a tuple of keys) points into."""
    cls = MemberConfig
    for key in loc:
        hint = get_type_hints(cls).get(key)
        if not (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
            break
        cls = hint
    return cls


def _fill_sections(cls: type, data: Any, prefix: str, origin: str) -> Any:
    """An empty section (`train:` with nothing under it) means its defaults; a non-mapping is refused."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config section '{prefix.rstrip('.') or 'top level'}' in {origin} must be a mapping")
    hints = get_type_hints(cls)
    out = dict(data)
    for key, value in data.items():
        hint = hints.get(key)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            out[key] = _fill_sections(hint, value, f"{prefix}{key}.", origin)
    return out


def _explain(err: ValidationError, origin: str) -> UserError:
    """pydantic's first error as our one line: the key, what was given, what is expected."""
    error = err.errors()[0]
    keys = [str(k) for k in error["loc"] if not isinstance(k, int)]
    key = ".".join(keys) or "top level"
    if error["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        section = _section(tuple(keys[:-1]))
        return _unknown_key(key, [f.name for f in dataclasses.fields(section)], origin)
    if error["type"] == "dataclass_type":
        return UserError(f"config section '{key}' in {origin} must be a mapping")
    given = error.get("input")
    if given is None:
        return UserError(f"config key '{key}' in {origin} may not be empty")
    hint = get_type_hints(_section(tuple(keys[:-1]))).get(keys[-1])
    expected = str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "") if hint else error["msg"]
    return UserError(f"config key '{key}' in {origin} has value {given!r}, expected {expected}")


def _check_choices(config: Any, prefix: str, origin: str) -> None:
    for f in dataclasses.fields(config):
        value, full = getattr(config, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            _check_choices(value, f"{full}.", origin)
        elif full in POINTS:  # data sources, losses, optimizers, schedules: named where they are implemented
            problem = POINTS[full].problem(value, origin)
            if problem:
                raise UserError(problem)
        elif full in CHOICES and value not in CHOICES[full]:
            raise UserError(
                f"config key '{full}' in {origin} is {value!r}; choose one of {', '.join(sorted(CHOICES[full]))}")


def _build(cls: type, data: dict, prefix: str, origin: str) -> Any:
    data = _fill_sections(cls, data, prefix, origin)
    try:
        config = _adapter().validate_python(data)
    except ValidationError as err:
        raise _explain(err, origin) from None
    _check_choices(config, "", origin)
    return config


CONFIG_MAX_BYTES = files.MiB  # a member config is a page of YAML


def read_yaml(path: Path) -> dict:
    data = files.read_yaml(path, "config file", CONFIG_MAX_BYTES) or {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping")
    return data


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> MemberConfig:
    """Merge the YAML file with the command-line overrides and validate every key."""
    raw = read_yaml(Path(path)) if path else {}
    origin = str(path) if path else "defaults"
    if overrides:
        extra = parse_overrides(overrides)
        # Validate the overrides on their own first so a typo is blamed on the command line, not the file.
        _build(MemberConfig, extra, "", "the command-line overrides")
        raw = merge(raw, extra)
    config = _build(MemberConfig, raw, "", origin)
    check_values(config, origin)
    return config


def to_dict(config: MemberConfig) -> dict:
    return dataclasses.asdict(config)
