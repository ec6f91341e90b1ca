"""The one table of vote rules: for every rule and suffix, whether it is fitted on validation rows, how its
recipe is applied, and how it is cross-fitted. `--rule` choices, `--compare`, `--rule best`, the recipe
and the report all read it, so a new rule is one entry here (plus its test).

- `fitted`: the rule learns something from the rows it is given (temperatures, weights, a selection, a
  stacker). Its score on those rows is in-sample; its honest score comes from cross-fitting, where it is
  refitted on each fold's training rows and scores the fold it never saw. A rule that is not fitted
  predicts every row the same way whatever rows it saw, so its predictions are already honest.
- `apply`: the recipe kernel (`Recipe.rule`) its fitted recipe is applied with by `ensemble.recipe.apply`.
- A suffix (`+f1w`) wraps any flat rule: it fits on the rule's output, so the combination is fitted.

Every rule is callable per task or per subset of rows through `fit_rule` (same arrays, same recipe).
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ensemble.calibration import fit_temperatures
from ensemble.composite import CompositeSpec
from ensemble.decision_weights import fit_decision_weights
from ensemble.hillclimb import DEFAULT_SPACE, hill_climb
from ensemble.recipe import Recipe, apply_stacked
from ensemble.selection import caruana_selection, counts_to_weights, fit_simplex_weights, selection_counts
from ensemble.stacking import fit_stacker

Fit = Callable[[np.ndarray, np.ndarray, list[str]], Recipe]  # (probs [members, rows, classes], y, names)
_CACHE_LOCK = threading.Lock()  # the memos below are filled from the cross-fit's fold threads


@dataclass(frozen=True)
class Context:
    """What a rule's fit may depend on besides the rows: the members, composite labels, seed and options."""
    names: list[str]
    composite: CompositeSpec | None = None
    seed: int = 0
    caruana: Mapping[str, Any] = field(default_factory=dict)
    # Caruana's size-controlled selection path per training array (by identity): caruana+best and the
    # comparison's selection curve read the same greedy pass instead of running it twice.
    paths: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class VoteRule:
    name: str
    fitted: bool                       # learns from validation rows: honest only when cross-fitted
    apply: str                         # the recipe kernel that applies it (ensemble.recipe.RULES)
    make: Callable[[Context], Fit]     # the fit for these members
    doc: str
    composite: bool = False            # needs composite labels (per-task rules)
    f1w_default: bool = False          # its +f1w row is in every comparison

    @property
    def crossfit(self) -> str:
        return ("refitted on each fold's training rows, scored on the fold it never saw" if self.fitted
                else "nothing is fitted: its predictions are honest on every row")


@dataclass(frozen=True)
class Suffix:
    name: str
    fitted: bool
    wrap: Callable[[Fit], Fit]         # base fit -> the suffixed fit
    doc: str


def _equal(names: list[str]) -> dict[str, float]:
    return {n: 1.0 for n in names}


def _fixed(rule: str, composite: bool = False) -> Callable[[Context], Fit]:
    def make(ctx: Context) -> Fit:
        spec = ctx.composite.to_dict() if composite and ctx.composite is not None else None
        return lambda probs, y, names: Recipe(rule, _equal(names), composite=spec)
    return make


def _temperature(ctx: Context) -> Fit:
    return lambda probs, y, names: Recipe("soft", _equal(names), temperatures=fit_temperatures(probs, y, names))


def _simplex(ctx: Context) -> Fit:
    return lambda probs, y, names: Recipe("soft", fit_simplex_weights(probs, y, names))


def size_control(n_members: int) -> dict[str, Any]:
    """Options of the size-controlled Caruana row: prune a large library to its best half (keep at least 5),
    stop at the selection curve's first best point."""
    return {"nbest": min(n_members, max(5, math.ceil(n_members / 2))), "use_best": True}


CURVE_ITERATIONS = 50  # caruana_selection's default number of steps


def selection_path_of(ctx: Context, probs: np.ndarray, y: np.ndarray, names: list[str]) -> tuple[np.ndarray,
                                                                                                    np.ndarray]:
    """(counts [steps, members], in-sample macro F1 [steps]) of size-controlled Caruana on these rows,
    computed once per array: the `caruana+best` fit and the selection curve share it."""
    with _CACHE_LOCK:
        hit = ctx.paths.get(id(probs))
    if hit is not None and hit[0] is probs:
        return hit[1]
    result = selection_counts(probs, y, names, n_iterations=CURVE_ITERATIONS, nbest=size_control(len(names))["nbest"])
    with _CACHE_LOCK:
        ctx.paths[id(probs)] = (probs, result)  # holding probs keeps its id from being reused
    return result


def _caruana(controlled: bool) -> Callable[[Context], Fit]:
    def make(ctx: Context) -> Fit:
        if controlled and not ctx.caruana:
            # The default options are the selection curve's path, cut at its first best point (use_best).
            def fit(probs: np.ndarray, y: np.ndarray, names: list[str]) -> Recipe:
                counts, scores = selection_path_of(ctx, probs, y, names)
                return Recipe("soft", counts_to_weights(counts[int(np.nanargmax(scores))], names))
            return fit
        options = {**(size_control(len(ctx.names)) if controlled else {}), **ctx.caruana}
        return lambda probs, y, names: Recipe("soft", caruana_selection(probs, y, names, seed=ctx.seed, **options))
    return make


def _stack(ctx: Context) -> Fit:
    return lambda probs, y, names: Recipe("stack", _equal(names),
                                          stack=fit_stacker(probs, y, names, probs.shape[2], ctx.seed))


def _hillclimb(ctx: Context) -> Fit:
    def fit(probs: np.ndarray, y: np.ndarray, names: list[str]) -> Recipe:
        weights, path = hill_climb(probs, y, names, space=DEFAULT_SPACE)
        return Recipe("hillclimb", weights, blend={"space": DEFAULT_SPACE, "path": [s.to_dict() for s in path]})
    return fit


def _decision_weights(base: Fit) -> Fit:
    """`base`, then macro-F1 decision weights fitted on the base's output over the same rows."""
    def fit(probs: np.ndarray, y: np.ndarray, names: list[str]) -> Recipe:
        recipe = _cached(base, probs, y, names)
        table = apply_stacked(recipe, probs, names)[1]
        return Recipe(recipe.rule, recipe.members, recipe.temperatures, recipe.composite, stack=recipe.stack,
                      blend=recipe.blend, decision_weights=fit_decision_weights(table, y, probs.shape[2]))
    return fit


# Simplest first: ties in honest macro F1 go to the earlier rule.
RULES: dict[str, VoteRule] = {r.name: r for r in [
    VoteRule("hard", False, "hard", _fixed("hard"), "each member votes for its argmax; ties to the lowest class"),
    VoteRule("soft", False, "soft", _fixed("soft"), "weighted mean of probabilities", f1w_default=True),
    VoteRule("geometric", False, "geometric", _fixed("geometric"), "mean of log-probabilities, renormalised"),
    VoteRule("logit", False, "logit", _fixed("logit"), "mean of logits (the same as geometric on probabilities)"),
    VoteRule("per_task_hard", False, "per_task_hard", _fixed("per_task_hard", True),
             "hard vote per task of composite labels", composite=True),
    VoteRule("per_task_soft", False, "per_task_soft", _fixed("per_task_soft", True),
             "soft vote per task of composite labels", composite=True),
    VoteRule("soft+temperature", True, "soft", _temperature, "soft vote after per-member temperature scaling"),
    VoteRule("simplex", True, "soft", _simplex, "soft vote, weights on the simplex minimising NLL"),
    VoteRule("caruana", True, "soft", _caruana(False), "greedy forward selection with replacement"),
    VoteRule("caruana+best", True, "soft", _caruana(True), "Caruana pruned to its best members, stopped at its "
             "curve's first best point", f1w_default=True),
    VoteRule("stack", True, "stack", _stack, "multinomial logistic regression on log-probabilities",
             f1w_default=True),
    VoteRule("hillclimb", True, "hillclimb", _hillclimb, "hill climbing with signed weights on macro F1",
             f1w_default=True),
]}
SUFFIXES: dict[str, Suffix] = {s.name: s for s in [
    Suffix("+f1w", True, _decision_weights, "macro-F1 decision weights fitted on the rule's output"),
]}
META_RULES = {"best": "whichever rule (or the best single member) has the best honest macro F1"}


def register(rule: VoteRule) -> None:
    """Add a rule to the table (its name must be new): the CLI, the comparison and the report then show it.

    Parameters
    ----------
    rule : VoteRule

    Returns
    -------
    None
    """
    if rule.name in RULES or any(rule.name.endswith(s) for s in SUFFIXES) or rule.name in META_RULES:
        raise ValueError(f"vote rule name {rule.name!r} is taken or ends with a suffix")
    RULES[rule.name] = rule


def parse(name: str) -> tuple[VoteRule, Suffix | None]:
    """The base rule and suffix of `name` (e.g. `stack+f1w`); KeyError for an unknown name.

    Parameters
    ----------
    name : str
        A rule, maybe with a suffix.

    Returns
    -------
    (VoteRule, Suffix or None)
    """
    if name in RULES:
        return RULES[name], None
    for suffix in SUFFIXES.values():
        base = name.removesuffix(suffix.name)
        if base != name and base in RULES and not RULES[base].composite:
            return RULES[base], suffix
    raise KeyError(name)


def is_fitted(name: str) -> bool:
    """True when `name` learns from the validation rows (and `best`, which chooses on them).

    Parameters
    ----------
    name : str

    Returns
    -------
    bool
    """
    if name in META_RULES:
        return True
    base, suffix = parse(name)
    return base.fitted or (suffix is not None and suffix.fitted)


def rule_names(composite: bool = True) -> list[str]:
    """Every name `--rule` accepts, in table order: the rules, each flat rule with each suffix, then `best`.

    Parameters
    ----------
    composite : bool

    Returns
    -------
    list of str
    """
    bases = [n for n, r in RULES.items() if composite or not r.composite]
    suffixed = [f"{n}{s}" for n in bases if not RULES[n].composite for s in SUFFIXES]
    return bases + suffixed + list(META_RULES)


def default_methods(composite: bool, extra: Sequence[str] = ()) -> list[str]:
    """The rules every comparison fits: each rule, the default suffixed rows, and any suffixed rule in `extra`.

    Parameters
    ----------
    composite : bool
    extra : sequence of str

    Returns
    -------
    list of str
    """
    names = [n for n, r in RULES.items() if composite or not r.composite]
    names += [f"{n}{s}" for n, r in RULES.items() if r.f1w_default for s in SUFFIXES]
    names += [m for m in extra if m not in names and m not in META_RULES and _known(m, composite)]
    return names


def _known(name: str, composite: bool) -> bool:
    try:
        base, _ = parse(name)
    except KeyError:
        return False
    return composite or not base.composite


class Fitter:
    """The fits of one comparison: each base fit made once and memoised per array, so that `stack` and
    `stack+f1w` within one fold share one stacker."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._bases: dict[str, Fit] = {}

    def fit_of(self, name: str) -> Fit:
        base, suffix = parse(name)
        if base.name not in self._bases:
            self._bases[base.name] = _memo(base.make(self.ctx))
        fit = self._bases[base.name] if suffix is None else suffix.wrap(self._bases[base.name])
        return _named(fit, name)

    def selection_path(self, probs: np.ndarray, y: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """`selection_path_of` this comparison's context: the path `caruana+best` was (or will be) cut from."""
        return selection_path_of(self.ctx, probs, y, names)


def fit_rule(name: str, probs: np.ndarray, y: np.ndarray, names: list[str], *, seed: int = 0,
             composite: CompositeSpec | None = None, caruana: Mapping[str, Any] | None = None) -> Recipe:
    """Fit rule `name` on probs [members, rows, classes] and labels y (any rows: a fold, a task, a subset).

    Parameters
    ----------
    name : str
    probs : ndarray, shape (n_members, n_rows, n_classes)
        Member probabilities, members in the order of `names`.
    y : ndarray of int, shape (n_rows,)
        True labels.
    names : sequence of str, length n_members
        Member names.
    seed, composite, caruana
        The comparison's context.

    Returns
    -------
    Recipe
    """
    return Fitter(Context(list(names), composite, seed, dict(caruana or {}))).fit_of(name)(probs, y, list(names))


def _named(fit: Fit, name: str) -> Fit:
    def named(probs: np.ndarray, y: np.ndarray, names: list[str]) -> Recipe:
        recipe = fit(probs, y, names)
        recipe.method = name
        return recipe
    return named



def _cached(base: Fit, probs: np.ndarray, y: np.ndarray, names: list[str]) -> Recipe:
    cache = getattr(base, "fits", None)
    if cache is None:
        return base(probs, y, names)
    with _CACHE_LOCK:
        hit = cache.get(id(probs))
    if hit is not None and hit[0] is probs:
        return hit[1]
    recipe = base.fits_of(probs, y, names)  # type: ignore[attr-defined]
    with _CACHE_LOCK:
        cache[id(probs)] = (probs, recipe)  # holding probs keeps its id from being reused
    return recipe


def _memo(fit: Fit) -> Fit:
    def wrapped(probs: np.ndarray, y: np.ndarray, names: list[str]) -> Recipe:
        return _cached(wrapped, probs, y, names)

    wrapped.fits = {}  # type: ignore[attr-defined]
    wrapped.fits_of = fit  # type: ignore[attr-defined]
    return wrapped
