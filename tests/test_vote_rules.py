"""The rules table (ensemble/rules.py) and the honest submitted row it makes possible.

Members here are probabilities drawn around the true labels of real digit rows (tests/report_fixture.py),
so every rule fits on real arrays; the report is built for real, pages and files included.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ensemble import rules
from ensemble.choose import all_rules, choose_recipe
from ensemble.compare import compare
from ensemble.recipe import Recipe, apply
from ensemble.submitted import submitted_row
from report.builder import ReportInputs, VoteOutcome, build_report
from report_fixture import member_probs

HONEST = ["f1_macro_honest", "acc_honest", "gain", "ci_low", "ci_high", "verdict"]


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(4)
    y = np.tile(np.arange(6), 40)
    members = {name: member_probs(y, 6, acc, rng) for name, acc in {"a": 0.7, "b": 0.65, "c": 0.6}.items()}
    return members, y


@pytest.fixture(scope="module")
def comparison(rows):
    members, y = rows
    return compare(members, y, 6, n_boot=200, extra=["simplex+f1w", "caruana+f1w"])


def fitted_names(comparison) -> list[str]:
    return [n for n in comparison.recipes if n in all_rules() and rules.is_fitted(n)]


def test_the_table_says_which_rules_are_fitted_and_every_name_parses():
    assert not any(rules.is_fitted(n) for n in ("hard", "soft", "geometric", "logit", "per_task_soft"))
    assert all(rules.is_fitted(n) for n in ("stack", "caruana+best", "hillclimb", "soft+f1w", "hard+f1w", "best"))
    for name in all_rules():
        if name not in rules.META_RULES:
            base, suffix = rules.parse(name)
            assert base.apply in ("hard", "soft", "geometric", "logit", "per_task_hard", "per_task_soft",
                                  "stack", "hillclimb")
    with pytest.raises(KeyError):
        rules.parse("per_task_soft+f1w")  # a suffix fits a flat table only


def test_every_fitted_rule_submits_its_own_cross_fitted_row(comparison):
    names = fitted_names(comparison)
    assert {"stack", "hillclimb", "hillclimb+f1w", "caruana+best", "simplex+f1w"} <= set(names)
    table = comparison.table.set_index("method")
    for name in names:
        recipe = choose_recipe(name, {}, None, comparison)
        assert recipe.method == name
        row, source, why = submitted_row(comparison, recipe, f"recipe:{name}", in_sample_f1=0.0)
        assert source == name and why == ""
        for col in HONEST:
            assert row[col] == table.loc[name, col], (name, col)
        # The note carries the same cross-fitted figures and the verdict.
        assert f"{table.loc[name, 'f1_macro_honest']:.4f}" in recipe.note and table.loc[name, "verdict"] in recipe.note


def test_a_recipe_that_cannot_be_refitted_gets_no_honest_figures(comparison, rows):
    members, y = rows
    stack = comparison.recipes["stack"]
    edited = Recipe.from_dict({**stack.to_dict(), "stack": {**stack.stack, "intercept": [v + 0.5 for v in
                                                                                          stack.stack["intercept"]]}})
    by_hand = Recipe("soft", {"a": 3.0, "b": 1.0, "c": 1.0}, method="soft")
    for recipe, expected in [(edited, "differ from what rule `stack` fits"), (by_hand, "given by hand")]:
        in_sample = 0.9123
        row, source, why = submitted_row(comparison, recipe, "x", in_sample)
        assert source == "" and expected in why
        assert all(pd.isna(row[c]) for c in HONEST) and row["f1_macro_val"] == in_sample


def test_an_old_recipe_file_without_its_method_still_finds_its_row(comparison):
    stack = comparison.recipes["stack"].to_dict()
    stack.pop("method")
    row, source, _ = submitted_row(comparison, Recipe.from_dict(stack), "x", 0.0)
    assert source == "stack"


def report_of(rows, recipe, tmp_path):
    members, y = rows
    labels, table = apply(recipe, members)
    primary = f"recipe:{recipe.method}"
    return build_report(ReportInputs(
        title="rules", classes=[str(c) for c in range(6)], y_val=y, members=members,
        ensembles={primary: VoteOutcome(labels, table)}, primary=primary, recipe=recipe, val_paths=[None] * len(y),
        n_boot=200, gallery_limit=0), tmp_path / recipe.method)


def test_rule_stack_bug_the_submitted_row_shows_the_cross_fitted_stack(rows, comparison, tmp_path):
    """Issue 22's reproduction: `vote --rule stack` printed the in-sample 1.0000 as honest, with an in-sample
    gain and `excludes_zero True`. The submitted row must now be the cross-fitted `stack` row."""
    members, y = rows
    recipe = choose_recipe("stack", {}, None, comparison)
    in_sample = float(np.mean(apply(recipe, members)[0] == y))
    result = report_of(rows, recipe, tmp_path)
    table = result.compare_table.set_index("method")
    submitted, crossfit = table.loc["submitted (recipe:stack)"], table.loc["stack"]
    for col in HONEST:
        assert submitted[col] == crossfit[col], col
    assert submitted["acc_honest"] != pytest.approx(in_sample)  # the stacker is optimistic in-sample here
    assert "excludes_zero" not in result.compare_table.columns
    csv = pd.read_csv(result.file("compare.csv")).set_index("method")
    assert csv.loc["submitted (recipe:stack)", "verdict"] == crossfit["verdict"]
    metrics = json.loads(result.file("metrics.json").read_text())
    assert "cross-fitted row of rule `stack`" in metrics["submitted_note"]
    assert "cross-fitted row of rule `stack`" in result.file("report.md").read_text()


def test_verdict_says_better_worse_or_no_evidence(comparison):
    verdicts = comparison.table.dropna(subset=["gain"])
    for _, row in verdicts.iterrows():
        expected = "better" if row["ci_low"] > 0 else "worse" if row["ci_high"] < 0 else "no evidence"
        assert row["verdict"] == expected


def test_hillclimb_path_is_stored_and_negative_weights_are_applied(comparison, rows, tmp_path):
    members, y = rows
    recipe = comparison.recipes["hillclimb"]
    path = recipe.blend["path"]
    assert path[0]["weight"] == 1.0 and all(b["score"] > a["score"] for a, b in zip(path, path[1:]))
    again = Recipe.from_yaml(recipe.to_yaml(tmp_path / "hillclimb.recipe.yaml"))
    assert again.to_dict() == recipe.to_dict()
    signed = Recipe("hillclimb", {"a": 1.0, "b": 1.0, "c": -0.5}, blend={"space": "prob", "path": []})
    labels, probs = apply(signed, members)
    mix = np.clip((members["a"] + members["b"] - 0.5 * members["c"]) / 1.5, 0, None)
    np.testing.assert_allclose(probs, mix / mix.sum(1, keepdims=True))
    assert np.array_equal(labels, mix.argmax(1))
