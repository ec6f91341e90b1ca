"""A recipe is everything needed to regenerate an ensemble's predictions from member probabilities:
the rule, the members and their weights, per-member temperatures and, for per-task rules, the
composite label layout. It round-trips through YAML exactly (floats are written with repr).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ensemble._checks import stack_members
from ensemble.calibration import apply_temperatures
from ensemble.composite import CompositeSpec
from ensemble.voting import geometric_vote, hard_vote_with_shares, logit_vote, soft_vote

FLAT_RULES = ("hard", "soft", "geometric", "logit")
PER_TASK_RULES = ("per_task_hard", "per_task_soft")
RULES = FLAT_RULES + PER_TASK_RULES


@dataclass
class Recipe:
    """How to combine named members; weights need not sum to 1 (only their ratios matter)."""

    rule: str
    members: dict[str, float]
    temperatures: dict[str, float] = field(default_factory=dict)
    composite: dict[str, Any] | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown rule {self.rule!r}; expected one of {list(RULES)}")
        if not self.members:
            raise ValueError("a recipe needs at least one member")
        self.members = {str(k): float(v) for k, v in self.members.items()}
        self.temperatures = {str(k): float(v) for k, v in self.temperatures.items()}
        for name, weight in self.members.items():
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"member {name!r} has invalid weight {weight}")
        if not any(w > 0 for w in self.members.values()):
            raise ValueError("recipe weights must not all be zero")
        for name, t in self.temperatures.items():
            if not (math.isfinite(t) and t > 0):
                raise ValueError(f"member {name!r} has invalid temperature {t}")
        if (self.rule in PER_TASK_RULES) != (self.composite is not None):
            raise ValueError(f"rule {self.rule!r} and composite={self.composite!r} do not go together")
        if self.composite is not None:
            # Normalise through the spec so a bad layout fails here, not at apply time.
            self.composite = CompositeSpec.from_dict(self.composite).to_dict()
        self.note = str(self.note)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "members": dict(self.members),
            "temperatures": dict(self.temperatures),
            "composite": self.composite,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        unknown = set(data) - {"rule", "members", "temperatures", "composite", "note"}
        if unknown:
            raise ValueError(f"unknown recipe fields: {sorted(unknown)}")
        return cls(
            rule=data["rule"],
            members=dict(data["members"]),
            temperatures=dict(data.get("temperatures") or {}),
            composite=data.get("composite"),
            note=data.get("note") or "",
        )

    def to_yaml(self, path: str | Path, write_text: Callable[[Path, str], Any] | None = None) -> Path:
        """Write the recipe as YAML; pass `write_text(path, text)` to write atomically or elsewhere."""
        path = Path(path)
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if write_text is None:
            path.write_text(text, encoding="utf-8")
        else:
            write_text(path, text)
        return path

    @classmethod
    def from_yaml(cls, path: str | Path) -> Recipe:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, Mapping):
            raise ValueError(f"{path} does not hold a recipe mapping")
        return cls.from_dict(data)


def apply(recipe: Recipe, probs_by_name: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Regenerate (labels [rows], probs [rows, classes]) from member probabilities keyed by name.

    Members not in the recipe are ignored; a recipe member that is missing
    raises ValueError naming it. For hard rules the returned table holds the
    weighted vote shares.
    """
    missing = sorted(set(recipe.members) - set(probs_by_name))
    if missing:
        raise ValueError(f"recipe member(s) missing from the probabilities: {', '.join(missing)}")
    names, probs = stack_members({name: probs_by_name[name] for name in recipe.members})
    return apply_stacked(recipe, probs, names)


def apply_stacked(recipe: Recipe, probs: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """`apply` for probs already stacked as [members, rows, classes] in the order of `names`."""
    index = {name: i for i, name in enumerate(names)}
    missing = sorted(set(recipe.members) - set(index))
    if missing:
        raise ValueError(f"recipe member(s) missing from the probabilities: {', '.join(missing)}")
    chosen = sorted(recipe.members)
    if chosen != list(names):
        probs = probs[[index[n] for n in chosen]]
    weights = np.array([recipe.members[n] for n in chosen])
    # Temperature never moves a member's argmax, so hard votes skip the work.
    if recipe.rule not in ("hard", "per_task_hard") and recipe.temperatures:
        probs = apply_temperatures(probs, chosen, recipe.temperatures)
    if recipe.rule == "hard":
        return hard_vote_with_shares(probs, weights)
    if recipe.rule in PER_TASK_RULES:
        spec = CompositeSpec.from_dict(recipe.composite or {})
        return spec.per_task_vote_with_probs(probs, weights, rule=recipe.rule.removeprefix("per_task_"))
    vote = {"soft": soft_vote, "geometric": geometric_vote, "logit": logit_vote}[recipe.rule]
    return vote(probs, weights)
