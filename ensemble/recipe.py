"""A recipe is everything needed to regenerate an ensemble's predictions from member probabilities:
the rule, the members and their weights, per-member temperatures, for per-task rules the
composite label layout, for `stack` the stacker's coefficients, for `hillclimb` the blend's space and
climbing path, optional macro-F1 decision weights, for fold groups which fold members make each voting
unit, and `method`: the vote rule of ensemble/rules.py that made it (which says whether it was fitted).
`rule` here names how the recipe is *applied* (its kernel): `caruana` applies as `soft`, for example. It round-trips
through YAML exactly (floats are written with repr); nothing in it is a pickle.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import files
from core.errors import UserError, one_line
from ensemble._checks import stack_members
from ensemble.calibration import apply_temperatures
from ensemble.composite import CompositeSpec
from ensemble.decision_weights import apply_decision_weights
from ensemble.hillclimb import SPACES, apply_blend
from ensemble.stacking import check_stacker, stacker_scores
from ensemble.voting import geometric_vote, hard_vote_with_shares, logit_vote, soft_vote

FLAT_RULES = ("hard", "soft", "geometric", "logit")
PER_TASK_RULES = ("per_task_hard", "per_task_soft")
RULES = FLAT_RULES + PER_TASK_RULES + ("stack", "hillclimb")  # how a recipe is applied (its kernel)
# How a fold group votes; written into every recipe that uses one, so the file says what it means.
GROUP_RULE = ("a fold group votes as one member: its validation predictions are its out-of-fold predictions "
              "over all training rows, its test predictions the mean of its fold models' probabilities")
_FIELDS = ("rule", "members", "temperatures", "composite", "note", "stack", "decision_weights", "groups",
           "group_rule", "blend", "method", "cost_ms")


@dataclass
class Recipe:
    """How to combine named members; weights need not sum to 1 (only their ratios matter)."""

    rule: str
    members: dict[str, float]
    temperatures: dict[str, float] = field(default_factory=dict)
    composite: dict[str, Any] | None = None
    note: str = ""
    stack: dict[str, Any] | None = None              # rule "stack": see ensemble.stacking.fit_stacker
    decision_weights: list[float] | None = None     # per class: predict argmax_k w_k p_k
    groups: dict[str, list[str]] | None = None       # voting unit -> its fold members, in fold order
    group_rule: str = ""
    blend: dict[str, Any] | None = None              # rule "hillclimb": {space, path}; see ensemble.hillclimb
    method: str = ""                                 # the vote rule (ensemble/rules.py) that made this recipe
    cost_ms: float | None = None                     # assumed inference cost per image (vote --budget-ms)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown rule {self.rule!r}; expected one of {list(RULES)}")
        if not self.members:
            raise ValueError("a recipe needs at least one member")
        self.members = {str(k): float(v) for k, v in self.members.items()}
        self.temperatures = {str(k): float(v) for k, v in self.temperatures.items()}
        signed = self.rule == "hillclimb"  # a hill-climbed blend may subtract a member
        for name, weight in self.members.items():
            if not (math.isfinite(weight) and (signed or weight >= 0)):
                raise ValueError(f"member {name!r} has invalid weight {weight}")
        if sum(self.members.values()) <= 0 or not any(w > 0 for w in self.members.values()):
            raise ValueError("recipe weights must not all be zero (and must sum to more than zero)")
        self._check_blend()
        self.method = str(self.method)
        if self.cost_ms is not None:
            self.cost_ms = float(self.cost_ms)
        for name, t in self.temperatures.items():
            if not (math.isfinite(t) and t > 0):
                raise ValueError(f"member {name!r} has invalid temperature {t}")
        if (self.rule in PER_TASK_RULES) != (self.composite is not None):
            raise ValueError(f"rule {self.rule!r} and composite={self.composite!r} do not go together")
        if self.composite is not None:
            # Normalise through the spec so a bad layout fails here, not at apply time.
            self.composite = CompositeSpec.from_dict(self.composite).to_dict()
        self.note = str(self.note)
        if (self.rule == "stack") != (self.stack is not None):
            raise ValueError(f"rule {self.rule!r} and stack parameters do not go together")
        if self.stack is not None:
            if not isinstance(self.stack, Mapping):
                raise ValueError("stack must be a mapping with 'coef' and 'intercept'")
            check_stacker(self.stack, len(self.members))
            self.stack = {**self.stack, "C": float(self.stack.get("C", 0.0)),
                          "coef": [[float(v) for v in row] for row in self.stack["coef"]],
                          "intercept": [float(v) for v in self.stack["intercept"]]}
            if sorted(self.stack.get("members", sorted(self.members))) != sorted(self.members):
                raise ValueError("stack: its 'members' differ from the recipe's members")
        if self.decision_weights is not None:
            if not isinstance(self.decision_weights, (list, tuple)):
                raise ValueError("decision_weights must be a list of numbers, one per class")
            w = [float(v) for v in self.decision_weights]
            if not w or not all(math.isfinite(v) and v >= 0 for v in w) or not any(v > 0 for v in w):
                raise ValueError("decision_weights must be non-negative finite numbers, not all zero")
            self.decision_weights = w
        if self.groups is not None:
            if not isinstance(self.groups, Mapping):
                raise ValueError("groups must map each voting unit to its fold members")
            self.groups = {str(k): [str(m) for m in v] for k, v in self.groups.items()}
            unknown = sorted(set(self.groups) - set(self.members))
            if unknown or not all(self.groups.values()):
                raise ValueError(f"groups must name recipe members, each with its fold members (got {unknown})")
            self.group_rule = self.group_rule or GROUP_RULE

    def _check_blend(self) -> None:
        if (self.rule == "hillclimb") != (self.blend is not None):
            raise ValueError(f"rule {self.rule!r} and blend parameters do not go together")
        if self.blend is not None:
            if self.blend.get("space") not in SPACES:
                raise ValueError(f"blend: space must be one of {list(SPACES)}")
            path = [{"member": str(s["member"]), "weight": float(s["weight"]), "score": float(s["score"])}
                    for s in self.blend.get("path") or []]
            self.blend = {"space": self.blend["space"], "path": path}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "members": dict(self.members),
            "temperatures": dict(self.temperatures),
            "composite": self.composite,
            "note": self.note,
        }
        # Optional parts are written only when used, so older recipes are written as before.
        if self.stack is not None:
            out["stack"] = self.stack
        if self.decision_weights is not None:
            out["decision_weights"] = list(self.decision_weights)
        if self.groups is not None:
            out["groups"] = {k: list(v) for k, v in self.groups.items()}
            out["group_rule"] = self.group_rule
        if self.blend is not None:
            out["blend"] = self.blend
        if self.method:
            out["method"] = self.method
        if self.cost_ms is not None:
            out["cost_ms"] = self.cost_ms
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        unknown = set(data) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown recipe fields: {sorted(unknown)}")
        if not isinstance(data.get("members"), Mapping):
            raise ValueError("'members' must map each member name to its weight (name: weight)")
        return cls(
            rule=data["rule"],
            members=dict(data["members"]),
            temperatures=dict(data.get("temperatures") or {}),
            composite=data.get("composite"),
            note=data.get("note") or "",
            stack=data.get("stack"),
            decision_weights=data.get("decision_weights"),
            groups=data.get("groups"),
            group_rule=data.get("group_rule") or "",
            blend=data.get("blend"),
            method=data.get("method") or "",
            cost_ms=data.get("cost_ms"),
        )

    def to_yaml(self, path: str | Path, write_text: Callable[[Path, str], Any] | None = None) -> Path:
        """Write the recipe as YAML; pass `write_text(path, text)` to write atomically or elsewhere."""
        return write_yaml(self.to_dict(), path, write_text)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Recipe:
        return read_recipe(path)


# A recipe is kilobytes; a stacker over 20 members x 200 classes is about 2 MB of YAML.
RECIPE_MAX_BYTES = 8 * files.MiB


def write_yaml(data: Mapping[str, Any], path: str | Path,
               write_text: Callable[[Path, str], Any] | None = None) -> Path:
    """A recipe mapping (flat or per task) as alias-free YAML, written by `write_text(path, text)` if given."""
    path = Path(path)
    text = files.dump_yaml(dict(data), sort_keys=False)
    if write_text is None:
        path.write_text(text, encoding="utf-8")
    else:
        write_text(path, text)
    return path


def read_recipe(path: str | Path) -> Recipe:
    """The recipe saved at `path`, or one line saying what is wrong with the file (its size, its bytes,
    its YAML, a missing field or a value of the wrong shape or type): read the one bounded, safe way."""
    data = files.read_yaml(path, "recipe", RECIPE_MAX_BYTES)
    if not isinstance(data, Mapping):
        raise UserError(f"recipe {path} does not hold a recipe mapping")
    try:
        return Recipe.from_dict(data)
    except KeyError as err:
        raise UserError(f"recipe {path}: missing field {err}") from None
    except (TypeError, ValueError, AttributeError) as err:
        raise UserError(one_line(f"recipe {path}: {err}")) from None


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
    labels, table = _rule_output(recipe, probs, chosen)
    if recipe.decision_weights is not None:
        return apply_decision_weights(table, recipe.decision_weights)
    return labels, table


def _rule_output(recipe: Recipe, probs: np.ndarray, chosen: list[str]) -> tuple[np.ndarray, np.ndarray]:
    if recipe.rule == "stack":
        return stacker_scores(recipe.stack or {}, probs)
    if recipe.rule == "hillclimb":
        return apply_blend(probs, [recipe.members[n] for n in chosen], (recipe.blend or {})["space"])
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
