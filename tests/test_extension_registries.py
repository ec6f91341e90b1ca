"""A vote rule and a report section added through their registries only (ensemble/rules.py,
report/sections.py) show up everywhere they should: `--help`, the `--compare` table, `--rule` and the page."""
from __future__ import annotations

import numpy as np
import pytest

from ensemble import rules
from ensemble.choose import all_rules, choose_recipe
from ensemble.compare import compare
from ensemble.recipe import Recipe, apply
from report import sections
from report.builder import ReportInputs, VoteOutcome, build_report
from report.page import Section, Text
from report_fixture import member_probs


def _first_member(ctx: rules.Context) -> rules.Fit:
    """A throw-away fitted rule: all weight on the member listed first (it 'learns' nothing, but says it does)."""
    return lambda probs, y, names: Recipe("soft", {sorted(names)[0]: 1.0})


@pytest.fixture
def throwaway():
    rules.register(rules.VoteRule("first_member", True, "soft", _first_member, "all weight on the first member"))

    @sections.register_section("throwaway", before="diversity")
    def build(ctx: sections.Context) -> Section:
        return Section("throwaway", "A throw-away section", [Text(f"{len(ctx.y)} rows seen by the throw-away")])

    yield
    del rules.RULES["first_member"]
    sections.SECTIONS[:] = [s for s in sections.SECTIONS if s.name != "throwaway"]


def test_a_rule_and_a_section_added_through_registries_appear_everywhere(throwaway, capsys, tmp_path):
    from scripts.vote import parse

    with pytest.raises(SystemExit):
        parse(["--help"])
    assert "first_member" in capsys.readouterr().out
    assert "first_member" in all_rules() and "first_member+f1w" in all_rules() and rules.is_fitted("first_member")

    rng = np.random.default_rng(2)
    y = np.tile(np.arange(5), 30)
    members = {n: member_probs(y, 5, acc, rng) for n, acc in {"p": 0.6, "q": 0.7}.items()}
    comparison = compare(members, y, 5, n_boot=100)
    by_method = comparison.table.set_index("method")
    # Its cross-fit puts all weight on `p` in every fold, so its honest row is `p`'s.
    assert by_method.loc["first_member", "f1_macro_honest"] == by_method.loc["member:p", "f1_macro_honest"]

    recipe = choose_recipe("first_member", {}, None, comparison)
    labels, table = apply(recipe, members)
    result = build_report(ReportInputs(
        title="registries", classes=[str(c) for c in range(5)], y_val=y, members=members,
        ensembles={"recipe:first_member": VoteOutcome(labels, table)}, primary="recipe:first_member", recipe=recipe,
        val_paths=[None] * len(y), n_boot=100, compare=comparison), tmp_path / "reg")
    page = result.html.read_text()
    assert 'id="throwaway"' in page and "150 rows seen by the throw-away" in page
    assert page.index('id="throwaway"') < page.index('id="diversity"')
    assert "first_member" in result.compare_table["method"].tolist()
    assert "cross-fitted row of rule `first_member`" in result.file("report.md").read_text()


def test_registries_refuse_a_name_twice():
    with pytest.raises(ValueError, match="taken"):
        rules.register(rules.VoteRule("stack", True, "stack", _first_member, "again"))
    with pytest.raises(ValueError, match="already registered"):
        sections.register_section("compare")(lambda ctx: None)
