"""A plan file: the members to train, derived from one base config, and validated as a whole before anything runs.

Each (unit, fold, seed) becomes one member config: the base file, the plan's overrides, the unit's arch and
overrides, then the split, fold, seed and derived name. Every derived config goes through the normal config
check (core/config.py), so a typo in unit 3 is refused before the first task starts, naming the unit and the key.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.config import MemberConfig, load_config, read_yaml, to_dict
from core.errors import UserError
from core.names import check_name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanSplit(_Strict):
    name: str
    n_folds: int = Field(ge=2, le=100)
    seed: int | None = None


class PlanUnit(_Strict):
    prefix: str
    arch: str | None = None
    overrides: list[str] = []


class PlanVote(_Strict):
    rule: str = "soft"
    compare: bool = False


class PlanResources(_Strict):
    """What one member asks of the cluster: Ray packs members by these (fractional GPUs share one device)."""
    cpus: float = Field(default=1, ge=0)
    gpus: float = Field(default=0, ge=0)
    threads: int = Field(default=1, ge=1, le=1024)  # OMP/MKL/torch threads of each member's process


class PlanSpec(_Strict):
    name: str
    base: str
    overrides: list[str] = []
    split: PlanSplit
    folds: Literal["all"] | list[int] = "all"
    seeds: list[int] = Field(default=[0], min_length=1)
    units: list[PlanUnit] = Field(min_length=1)
    vote: PlanVote = PlanVote()
    retries: int = Field(default=1, ge=0, le=20)
    resources: PlanResources = PlanResources()


@dataclass
class PlannedMember:
    name: str
    unit: str                # the unit's prefix: its members vote as one fold group
    fold: int
    seed: int
    config: dict             # the derived config, as training writes it into config.yaml
    config_hash: str
    member_config: MemberConfig


@dataclass
class Plan:
    path: Path
    spec: PlanSpec
    members: list[PlannedMember] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    def folds(self) -> list[int]:
        return list(range(self.spec.split.n_folds)) if self.spec.folds == "all" else list(self.spec.folds)


def config_hash(config: dict) -> str:
    """Identity of a derived config: the same member trained twice has the same hash, any changed key a new one."""
    return hashlib.sha256(yaml.safe_dump(config, sort_keys=True).encode()).hexdigest()


def _spec(path: Path) -> PlanSpec:
    raw = read_yaml(path)
    try:
        return PlanSpec.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"plan {path}: '{where}': {first['msg']}") from err


def _base_path(path: Path, base: str) -> Path:
    candidate = Path(base).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return path.parent / candidate  # else relative to the plan file


def member_name(prefix: str, fold: int, seed: int, several_seeds: bool) -> str:
    return f"{prefix}{fold}" + (f"-s{seed}" if several_seeds else "")


def _derive(plan: Plan, base: Path, unit: PlanUnit, fold: int, seed: int) -> PlannedMember:
    s = plan.spec
    name = member_name(unit.prefix, fold, seed, len(s.seeds) > 1)
    split = [f"data.split.name={s.split.name}", f"data.split.n_folds={s.split.n_folds}", f"data.split.fold={fold}"]
    if s.split.seed is not None:
        split.append(f"data.split.seed={s.split.seed}")
    arch = [f"model.arch={unit.arch}"] if unit.arch else []
    overrides = [*s.overrides, *arch, *unit.overrides, *split, f"train.seed={seed}", f"name={name}"]
    try:
        config = load_config(base, overrides)
    except UserError as err:
        raise UserError(f"plan {plan.path}, unit '{unit.prefix}' (member {name}): {err}") from err
    derived = to_dict(config)
    return PlannedMember(name, unit.prefix, fold, seed, derived, config_hash(derived), config)


def load_plan(path: str | Path) -> Plan:
    """Read and check the whole plan; every member's config is derived and validated here, before any work."""
    path = Path(path)
    plan = Plan(path, _spec(path))
    s = plan.spec
    check_name(s.name, f"plan {path}: name")
    base = _base_path(path, s.base)
    bad_folds = [f for f in plan.folds() if not 0 <= f < s.split.n_folds]
    if bad_folds:
        raise UserError(f"plan {path}: fold {bad_folds[0]} is outside 0..{s.split.n_folds - 1} (split.n_folds)")
    prefixes = [u.prefix for u in s.units]
    for unit in s.units:
        clash = [p for p in prefixes if p != unit.prefix and p.startswith(unit.prefix)]
        if prefixes.count(unit.prefix) > 1 or clash:
            other = clash[0] if clash else unit.prefix
            raise UserError(f"plan {path}: unit prefix '{unit.prefix}' also begins unit '{other}': "
                            f"each unit's members must be found by its own prefix")
    for unit in s.units:
        for fold in plan.folds():
            for seed in s.seeds:
                plan.members.append(_derive(plan, base, unit, fold, seed))
    return plan
