"""Voting units for the vote job: single members, and fold groups that vote as one member.

A fold group is one architecture trained on every fold of one split (the members
`scripts.oof` assembles). As a voting unit, its validation predictions are its
out-of-fold predictions over all training rows (each row predicted by the fold
model that never saw it) and its test predictions are the mean of its fold
models' probabilities. Both come from the prediction cache, member by member,
exactly as for any other member. Units are named on the command line by a glob
over registry names (`--members 'mask-r18-f*'`) or by a name prefix (`--groups
mask-r18-f`, named `mask-r18-f*`); the recipe records each group's fold members.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.entry import RegistryEntry
from core.errors import UserError
from core.registry import Registry
from core.settings import Settings
from ensemble.recipe import Recipe
from jobs.inputs import VoteInputs, check_compatible, check_same_corrections, class_difference
from predict.cache import Prediction
from predict.oof import check_fold_group, stitch_oof

GLOB = set("*?[")


@dataclass
class Unit:
    name: str            # how tables, weights and the recipe name it
    members: list[str]   # its registry members (fold order is settled by stitch_oof)
    group: bool          # True: a fold group (out-of-fold validation, mean test predictions)


def is_pattern(name: str) -> bool:
    return bool(GLOB & set(name))


def expand_units(members: list[str], prefixes: list[str], registered: list[str]) -> list[Unit]:
    """The voting units named by --members (names or glob patterns) and --groups (name prefixes)."""
    units: list[Unit] = []
    for item in members:
        if not is_pattern(item):
            units.append(Unit(item, [item], False))
            continue
        matched = sorted(fnmatch.filter(registered, item))
        if not matched:
            raise UserError(f"--members pattern '{item}' matches no registered member")
        units.append(Unit(item, matched, True) if len(matched) > 1 else Unit(matched[0], matched, False))
    for prefix in prefixes:
        matched = sorted(n for n in registered if n.startswith(prefix))
        if not matched:
            raise UserError(f"--groups prefix '{prefix}' matches no registered member")
        units.append(Unit(f"{prefix}*", matched, True))
    names = [u.name for u in units]
    taken: dict[str, str] = {}
    for unit in units:
        for member in unit.members:
            if member in taken:
                raise UserError(f"member '{member}' belongs to both '{taken[member]}' and '{unit.name}'; "
                                f"name each member once")
            taken[member] = unit.name
    if len(set(names)) != len(names):
        raise UserError("a voting unit is named twice in --members/--groups")
    return units


def units_of_recipe(members: list[str], groups: dict[str, list[str]] | None) -> list[Unit]:
    groups = groups or {}
    return [Unit(name, list(groups[name]), True) if name in groups else Unit(name, [name], False)
            for name in members]


def check_units(units: list[Unit], entries: dict[str, RegistryEntry]) -> None:
    """What can be refused from the registry entries alone, before any prediction work.

    A fold group must be complete (each fold once, one split, one architecture). A trained holdout
    member is validated on one fold, a strict part of the training rows a fold group is scored on,
    so the two never cover the same rows; imported members are checked on their rows later.
    """
    check_same_corrections([entries[m] for u in units for m in u.members if not entries[m].is_imported] or
                           [entries[units[0].members[0]]])
    singles = [entries[u.name] for u in units if not u.group]
    if singles:
        check_compatible(singles)
    first = entries[units[0].members[0]]
    for entry in (entries[m] for u in units for m in u.members):
        if entry.classes != first.classes:
            raise UserError(f"members '{first.name}' and '{entry.name}' have different class lists "
                            f"({class_difference(first.classes, entry.classes)})")
    groups = [u for u in units if u.group]
    for unit in groups:
        group_entries = [entries[m] for m in unit.members]
        check_fold_group(group_entries)
    holdouts = [u for u in units if not u.group and not entries[u.name].is_imported]
    if groups and holdouts:
        group, member = groups[0], holdouts[0]
        split = entries[member.name].split
        raise UserError(f"fold group '{group.name}' is scored on the out-of-fold rows of every training image, but "
                        f"member '{member.name}' is validated only on fold {split.fold} of split "
                        f"'{split.name}': weights fitted on one set of rows would be scored on the other's; "
                        f"vote fold groups with fold groups, or holdout members with holdout members")


def fold_members(units: list[Unit]) -> list[str]:
    return [m for u in units for m in u.members]


def _parts(predictions: dict[str, dict[str, Prediction]], members: list[str]) -> list[dict[str, np.ndarray]]:
    return [{"ids": predictions[m]["val"].ids, "labels": predictions[m]["val"].labels,
             "probs": predictions[m]["val"].probs, "logits": predictions[m]["val"].logits} for m in members]


def _mean_test(unit: Unit, predictions: dict[str, dict[str, Prediction]]) -> tuple[np.ndarray, np.ndarray] | None:
    """The group's test probabilities: the mean of its fold models', summed in fold-member name order."""
    if not all("test" in predictions[m] for m in unit.members):
        return None
    tests = [predictions[m]["test"] for m in unit.members]
    for member, test in zip(unit.members[1:], tests[1:]):
        if not np.array_equal(test.ids, tests[0].ids):
            raise UserError(f"fold members '{unit.members[0]}' and '{member}' of '{unit.name}' have different test rows")
    total = np.zeros(tests[0].probs.shape, dtype=np.float64)
    for test in tests:
        total += test.probs
    return tests[0].ids, total / len(tests)


def _rows_text(unit: Unit, entries: dict[str, RegistryEntry], n_rows: int) -> str:
    split = entries[unit.members[0]].split
    if unit.group:
        return f"fold group '{unit.name}' is scored on its {n_rows} out-of-fold rows of split '{split.name}'"
    return f"member '{unit.name}' is validated on {n_rows} rows (split '{split.name}' fold {split.fold})"


def unit_inputs(units: list[Unit], entries: dict[str, RegistryEntry], predictions: dict[str, dict[str, Prediction]],
                settings: Settings, with_test: bool = True) -> tuple[VoteInputs, np.ndarray | None]:
    """Stack every unit's validation and test probabilities on shared rows; also the rows' groups.

    Single members must share one validation split (as always). A fold group is checked as
    `scripts.oof` checks it. A fold group and a holdout member are refused together unless they
    cover the same rows: a weight fitted on one set of rows would be scored on the other's.
    """
    check_units(units, entries)
    first_entry = entries[units[0].members[0]]
    val: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # unit -> ids, labels, probs
    test: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    for unit in units:
        unit_entries = [entries[m] for m in unit.members]
        if unit.group:
            split_file = settings.splits / f"{unit_entries[0].split.name}.csv"
            oof = stitch_oof(unit_entries, _parts(predictions, unit.members),
                             split_file if split_file.exists() else None)
            val[unit.name] = (oof.ids, oof.labels, oof.probs)
            test[unit.name] = _mean_test(unit, predictions) if with_test else None
        else:
            p = predictions[unit.name]["val"]
            val[unit.name] = (np.asarray(p.ids).astype(str), p.labels, p.probs)
            t = predictions[unit.name].get("test") if with_test else None
            test[unit.name] = None if t is None else (t.ids, t.probs)

    names = [u.name for u in units]
    ref_ids = val[names[0]][0]
    position = pd.Index(ref_ids)
    val_probs, labels = [], val[names[0]][1]
    for unit in units:
        ids, unit_labels, probs = val[unit.name]
        if len(ids) != len(ref_ids) or not position.isin(ids).all() or not pd.Index(ids).isin(ref_ids).all():
            raise UserError(f"{_rows_text(units[0], entries, len(ref_ids))}, but {_rows_text(unit, entries, len(ids))}"
                            f": vote fold groups with fold groups of the same split, and holdout members with "
                            f"members validated on the same rows")
        order = pd.Index(ids).get_indexer(ref_ids)
        if not np.array_equal(np.asarray(unit_labels)[order], labels):
            raise UserError(f"'{unit.name}' and '{names[0]}' disagree on the labels of their shared rows")
        val_probs.append(np.asarray(probs, dtype=np.float64)[order])

    test_ids = test_probs = None
    if with_test and all(test[n] is not None for n in names):
        test_ids = test[names[0]][0]
        for unit in units[1:]:
            if not np.array_equal(test[unit.name][0], test_ids):
                raise UserError(f"'{names[0]}' and '{unit.name}' have different test rows in their predictions")
        test_probs = np.stack([np.asarray(test[n][1], dtype=np.float64) for n in names])
    inputs = VoteInputs(names, list(first_entry.classes), np.asarray(ref_ids), np.asarray(labels, dtype=np.int64),
                        np.stack(val_probs), test_ids, test_probs)
    return inputs, row_groups(first_entry, inputs.val_ids, settings.splits)


def row_groups(entry: RegistryEntry, ids: np.ndarray, splits_dir: Path) -> np.ndarray | None:
    """The split file's `group` of each row, or None when the file (or a row in it) is missing."""
    split = entry.split.name
    path = Path(splits_dir) / f"{split}.csv"
    if not split or not path.is_file():
        return None
    table = pd.read_csv(path, dtype={"id": str, "group": str})
    if not {"id", "group"} <= set(table.columns):
        return None
    groups = table.set_index("id")["group"].reindex(pd.Index(np.asarray(ids).astype(str)))
    return None if groups.isna().any() else groups.to_numpy(dtype=str)


def recipe_entries(recipe: Recipe, path: str, registry: Registry) -> list[RegistryEntry]:
    """The registry entries of the recipe's members (one read), refusing missing or imported ones.

    For a recipe of fold groups these are the fold members of every group, in unit order. (Here, beside
    the units, so that jobs that only read predictions, like pseudo-labelling, need no training stack.)"""
    registered = {e.name: e for e in registry.members()}
    units = units_of_recipe(list(recipe.members), recipe.groups)
    if recipe.groups and not all(u.group for u in units):
        raise UserError(f"recipe {path} mixes fold groups and holdout members; a vote refuses that mix, so a "
                        f"student cannot learn from it either")
    for name in fold_members(units):
        if name not in registered:
            known = ", ".join(registered) or "none"
            raise UserError(f"recipe {path} names member '{name}', which is not in {registry.path} "
                            f"(registered: {known})")
        if registered[name].is_imported:
            raise UserError(f"recipe {path}: member '{name}' is imported (predictions only), so it cannot predict "
                            f"the training rows a student needs; distil a recipe of trained members")
    entries = [registered[n] for n in fold_members(units)]
    if recipe.groups:
        check_units(units, {e.name: e for e in entries})
    else:
        check_compatible(entries)
    return entries
