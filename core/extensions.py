"""Extension points: one registry per kind of plug-in, filled beside its implementations.

A data source, a loss, an optimizer or a learning-rate schedule is added by registering it in
the module that implements it, and nowhere else:

    data.source      imagedata/sources.py   @DATA_SOURCES.register("mask")
    train.loss       members/losses.py      @LOSSES.register("focal")
    train.optimizer  members/optim.py       @OPTIMIZERS.register("sgd")
    train.scheduler  members/optim.py       @SCHEDULERS.register("step")

The config check (core.config), `--help` texts and error messages read the names from these
objects. core sits below those modules and may not import them, so each point names the
module that fills it (`provider`) and loads it the first time its names are asked for: the
inversion timm's model registry and setuptools entry points use. That lookup by name is the
only way core reaches a higher layer; tests/test_architecture.py checks each provider exists,
sits in an allowed package, and registers into its point. A `--help` text and the config check
read the names without that import (`listed`): the provider's register() calls, read from its
source, since importing members.losses would load torch only to print or compare a few words.

The registries above core (model families, vote rules, report sections, TTA views) live in the
modules that use them; the README's "Extension points: where things live" lists every one.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from collections.abc import Callable
from typing import Any

from core.errors import UserError


class ExtensionPoint:
    """Named implementations of one config key, in registration order."""

    def __init__(self, key: str, what: str, provider: str):
        self.key = key            # the config key whose value names an implementation
        self.what = what          # how messages call one implementation ("data source")
        self.provider = provider  # the module that registers the built-in implementations
        self._items: dict[str, Any] = {}
        self._help: dict[str, str] = {}
        POINTS[key] = self

    def register(self, name: str, help: str = "") -> Callable[[Any], Any]:
        """Decorator: `@LOSSES.register("focal", "focal loss, gamma = train.focal_gamma")`."""
        def add(implementation: Any) -> Any:
            if name in self._items and self._items[name] is not implementation:
                raise ValueError(f"{self.what} '{name}' is registered twice")
            self._items[name] = implementation
            self._help[name] = help
            return implementation
        return add

    def unregister(self, name: str) -> None:
        """Drop one implementation (a test's throw-away extension cleans up after itself)."""
        self._items.pop(name, None)
        self._help.pop(name, None)

    def _load(self) -> None:
        if self.provider:
            importlib.import_module(self.provider)

    def names(self) -> list[str]:
        self._load()
        return list(self._items)

    def listed(self) -> list[str]:
        """names() for a --help text, without importing the provider where it is not loaded yet: the names
        its source registers, then any registered at run time (tests check both reads agree)."""
        if not self.provider or self.provider in sys.modules:
            return list(self._items)
        declared = declared_names(self)
        return declared + [n for n in self._items if n not in declared]

    def help(self) -> str:
        """One line per implementation, for `--help` texts."""
        self._load()
        return "; ".join(f"{n}: {h}" if h else n for n, h in self._help.items())

    def problem(self, value: Any, origin: str) -> str | None:
        """The config check's one line when `value` names no implementation, else None."""
        # listed(), not names(): a vote over cached members checks its members' configs, and importing
        # members.losses and members.optim for that would load torch and timm (~5 s) to compare two words.
        names = self.listed()
        if value in names:
            return None
        return f"config key '{self.key}' in {origin} is {value!r}; choose one of {', '.join(sorted(names))}"

    def get(self, name: str) -> Any:
        self._load()
        if name not in self._items:
            raise UserError(f"{self.key} '{name}' is not a known {self.what} (known: {', '.join(sorted(self._items))})")
        return self._items[name]


def declared_names(point: ExtensionPoint) -> list[str]:
    """The names the provider's source registers into `point` (`@NAME.register("x", ...)`), in source order."""
    origin = importlib.util.find_spec(point.provider).origin
    with open(origin, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), filename=origin)
    local = {alias.asname or alias.name for node in ast.walk(tree)
             if isinstance(node, ast.ImportFrom) and node.module == __name__
             for alias in node.names if globals().get(alias.name) is point}
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and node.func.attr == "register" and isinstance(node.func.value, ast.Name)
             and node.func.value.id in local and node.args and isinstance(node.args[0], ast.Constant)]
    return [call.args[0].value for call in sorted(calls, key=lambda c: (c.lineno, c.col_offset))]


POINTS: dict[str, ExtensionPoint] = {}

DATA_SOURCES = ExtensionPoint("data.source", "data source", "imagedata.sources")
LOSSES = ExtensionPoint("train.loss", "loss", "members.losses")
OPTIMIZERS = ExtensionPoint("train.optimizer", "optimizer", "members.optim")
SCHEDULERS = ExtensionPoint("train.scheduler", "learning-rate schedule", "members.optim")
