"""The inference budget: each member's cost measured when it predicts (cache and registry entry), the
cost-accuracy frontier in the report, and `vote --rule best --budget-ms N`.

Members are real timm models with seeded random weights on the digits PNGs (tests/predict_fixture.py);
prediction, the registry, the vote and the report all run for real.
"""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from core.errors import UserError
from core.registry import Registry
from ensemble.budget import best_within_budget, frontier, subsets_within
from jobs.vote import VoteRequest, vote
from predict import cache
from predict.run import predict_members
from predict_fixture import MEMBERS, members_template, project_copy
from report_fixture import member_probs

NAMES = [name for name, *_ in MEMBERS]


@pytest.fixture
def project(tmp_path, tmp_path_factory, digits_root):
    settings, _ = project_copy(members_template(tmp_path_factory.getbasetemp(), digits_root), tmp_path / "proj",
                               digits_root)
    return settings


def test_predicting_measures_each_members_cost_in_the_cache_and_the_registry(project):
    registry = Registry(project.registry)
    found = predict_members(NAMES, registry, project, batch_size=64)
    for name in NAMES:
        stored = cache.load(cache.cache_path(project.predictions, name, "val"))
        assert stored.ms_per_image > 0 and stored.cost_device == "cpu" and stored.cost_batch == 64
        assert stored.ms_per_image == pytest.approx(found[name]["val"].ms_per_image)
        entry = registry.get(name)
        assert entry.inference is not None and entry.inference.device == "cpu"
        assert entry.inference.images_per_s == pytest.approx(1000 / entry.inference.ms_per_image)


def test_budget_below_the_cheapest_member_is_one_line_naming_its_cost(project):
    predict_members(NAMES, Registry(project.registry), project, batch_size=64)
    costs = {n: Registry(project.registry).get(n).inference.ms_per_image for n in NAMES}
    cheapest = min(costs, key=costs.get)
    with pytest.raises(UserError) as err:
        vote(VoteRequest(members=NAMES, rule="best", budget_ms=costs[cheapest] / 2, name="tight"), project)
    message = str(err.value)
    assert "\n" not in message and f"'{cheapest}'" in message and f"{costs[cheapest]:.3g} ms" in message
    assert not (project.output_root / "submissions" / "tight.csv").exists()

    # A budget that fits the cheapest member only: the vote submits it, says what it costs, and draws the frontier.
    result = vote(VoteRequest(members=NAMES, rule="best", budget_ms=costs[cheapest] * 1.01, name="one"), project)
    assert list(result.recipe.members) == [cheapest] and result.recipe.cost_ms == pytest.approx(costs[cheapest])
    assert "--budget-ms" in result.recipe.note
    page = result.report.html.read_text()
    assert 'id="frontier"' in page and (result.report.folder / "frontier.png").is_file()
    points = result.report.metrics["frontier"]["points"]
    assert {p["mark"] for p in points} >= {"best single member", "full ensemble"}


def test_frontier_is_greedy_by_gain_per_cost_and_marks_the_ends():
    rng = np.random.default_rng(3)
    y = np.tile(np.arange(6), 40)
    probs = {n: member_probs(y, 6, acc, rng) for n, acc in {"big": 0.75, "mid": 0.65, "small": 0.6}.items()}
    costs = {"big": 8.0, "mid": 2.0, "small": 1.0}
    table = frontier(probs, y, costs, "soft")
    singles = {n: f1_score(y, p.argmax(1), average="macro") for n, p in probs.items()}
    first = max(singles, key=lambda n: singles[n] / costs[n])
    assert ((table["members"] == first) & (table["cost_ms"] == costs[first])).any()
    full = table[table["mark"] == "full ensemble"].iloc[0]
    assert full["cost_ms"] == 11.0 and set(full["members"].split(", ")) == set(costs)
    best = table[table["mark"] == "best single member"].iloc[0]
    assert best["members"] == "big"
    on = table[table["on_frontier"]].sort_values("cost_ms")
    assert on["f1_macro_honest"].is_monotonic_increasing


def test_subsets_within_a_budget_are_the_largest_that_fit():
    costs = {"a": 1.0, "b": 2.0, "c": 4.0}
    assert sorted(map(sorted, subsets_within(costs, 3.5))) == [["a", "b"]]
    assert sorted(map(sorted, subsets_within(costs, 5.0))) == [["a", "b"], ["a", "c"]]  # b+c = 6 does not fit
    rng = np.random.default_rng(0)
    y = np.tile(np.arange(4), 30)
    probs = {n: member_probs(y, 4, 0.6, rng) for n in costs}
    recipe, _ = best_within_budget(probs, y, 4, costs, 3.5)
    assert set(recipe.members) <= {"a", "b"} and recipe.cost_ms <= 3.5


def test_a_budget_beside_a_saved_recipe_is_refused_in_one_line_before_any_work(tmp_path):
    from core.settings import load_settings

    recipe = tmp_path / "saved.recipe.yaml"  # never read: the refusal comes first
    with pytest.raises(UserError) as err:
        vote(VoteRequest(recipe=str(recipe), budget_ms=5.0, name="b"), load_settings())
    assert "--budget-ms" in str(err.value) and str(recipe) in str(err.value) and "\n" not in str(err.value)
    assert not (load_settings().output_root / "submissions").exists()
