"""A scenario's expected verdict (``expect:``): parsed strictly, and applied by the one judging step."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from paths import REPO
from synthetic_run import final_state, history

from oversold.analysis.judge import judge
from oversold.analysis.results import results_body, validate_results
from oversold.checker import INVARIANT_NAMES as CHECKER_NAMES
from oversold.errors import ScenarioError
from oversold.model.exit_codes import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_PASS, EXIT_THRESHOLD, EXIT_UNEXPECTED
from oversold.model.expect import INVARIANT_NAMES, Expectation
from oversold.model.scenario import Sale, Scenario
from oversold.model.scenario_file import dump_scenario, load_scenario, parse_scenario


def problems_of(data) -> list[str]:
    with pytest.raises(ScenarioError) as e:
        parse_scenario(data)
    return e.value.problems


def test_the_model_knows_exactly_the_checkers_invariants():
    assert tuple(INVARIANT_NAMES) == tuple(CHECKER_NAMES)


def test_an_expected_failure_is_parsed_for_the_sales_strategy_and_round_trips():
    s = parse_scenario({"sale": {"strategy": "order_deduct"},
                        "expect": {"verdict": "fail", "invariant": "sells_out", "may_also_fail": ["conservation"]}})
    assert s.expect == Expectation("fail", ("sells_out",), ("conservation",), "order_deduct")
    assert parse_scenario(yaml.safe_load(dump_scenario(s))).expect == s.expect
    plain = parse_scenario({})
    assert plain.expect == Expectation() and parse_scenario(yaml.safe_load(dump_scenario(plain))).expect == Expectation()


def test_every_problem_of_expect_is_listed_with_its_path():
    problems = problems_of({"expect": {"verdict": "fial", "invariant": ["no_oversell", "nope"], "color": 1,
                                       "strategy": "magic"}})
    assert any(p.startswith("expect.color: unknown field") for p in problems)
    assert any(p.startswith("expect.verdict: must be one of pass, fail") for p in problems)
    assert any(p.startswith("expect.invariant: 'nope' is not an invariant") for p in problems)
    assert any(p.startswith("expect.strategy: must be one of") for p in problems)
    assert problems_of({"expect": {"verdict": "fail"}}) == [
        "expect.invariant: an expected failure names the invariant(s) that must fail"]
    assert problems_of({"expect": {"invariant": "sells_out"}})[0].startswith("expect.verdict: missing")
    assert problems_of({"expect": {"verdict": "pass", "invariant": "sells_out"}}) == [
        "expect: an expected pass names no invariants (invariant, may_also_fail are for fail)"]
    assert problems_of({"expect": {"verdict": "fail", "invariant": 3}})[0].startswith(
        "expect.invariant: must be an invariant name or a list of them")
    assert problems_of({"expect": "fail"}) == ["expect: must be a mapping, got str"]


def scenario(stock: int, **expect) -> Scenario:
    exp = Expectation(**expect) if expect else Expectation()
    return Scenario(name="synthetic", sale=Sale(id="moutai", stock=stock, hold_ttl_ms=1000), expect=exp)


# the synthetic run with stock 2 oversells: no_oversell and conservation fail
OVERSOLD = dict(verdict="fail", invariant=("no_oversell",), may_also_fail=("conservation",), strategy="pre_deduct")


def test_the_declared_failure_is_as_expected_and_exits_0():
    j = judge(scenario(2, **OVERSOLD), history(), final_state(2), run_dir=None)
    assert j.verdict.overall == "fail"
    assert j.exit_code == EXIT_PASS and j.expectation is not None and j.expectation.met
    assert "as expected: no_oversell, conservation failed with pre_deduct" in j.summary.splitlines()[1]


def test_an_unexpected_pass_exits_6_and_says_so():
    j = judge(scenario(3, **OVERSOLD), history(), final_state(3), run_dir=None)
    assert j.verdict.overall == "pass"
    assert j.exit_code == EXIT_UNEXPECTED and not j.expectation.met
    assert "UNEXPECTED PASS" in j.summary


def test_a_failure_of_an_undeclared_invariant_exits_1():
    strict = dict(OVERSOLD, may_also_fail=())
    j = judge(scenario(2, **strict), history(), final_state(2), run_dir=None)
    assert j.exit_code == EXIT_FAIL and "failed unexpectedly: conservation" in j.summary
    missing = dict(OVERSOLD, invariant=("no_oversell", "sells_out"))
    j = judge(scenario(2, **missing), history(), final_state(2), run_dir=None)
    assert j.exit_code == EXIT_FAIL and "expected to fail but did not: sells_out" in j.summary


def test_an_expected_failure_that_could_not_be_decided_is_inconclusive():
    exp = Expectation(verdict="fail", invariant=("sells_out",), may_also_fail=("conservation",))
    # sells_out of a run cut short is undecided (issue 14): never "as expected", never a violation
    met = exp.judge("fail", ["conservation"], "order_deduct", undecided=["sells_out"])
    assert met is not None and (met.met, met.exit_code) == (False, EXIT_INCONCLUSIVE)
    assert "sells_out could not be decided" in met.message
    assert exp.judge("inconclusive", [], "order_deduct", undecided=["sells_out"]).exit_code == EXIT_INCONCLUSIVE
    # a failure the scenario does not allow still wins
    assert exp.judge("fail", ["no_oversell"], "order_deduct", undecided=["sells_out"]).exit_code == EXIT_FAIL


def test_the_web_ui_line_says_how_the_run_compares_with_expect():
    from oversold.swarm.webui import describe
    j = judge(scenario(2, **OVERSOLD), history(), final_state(2), run_dir=None)
    line = describe(j.verdict, j.exit_code, j.expectation)
    assert line.startswith("failed: no_oversell, conservation;") and "; as expected: no_oversell" in line
    j = judge(scenario(3, **OVERSOLD), history(), final_state(3), run_dir=None)
    assert "UNEXPECTED PASS" in describe(j.verdict, j.exit_code, j.expectation)


def test_another_strategy_is_judged_as_any_run():
    other = dict(OVERSOLD, strategy="order_deduct")
    assert judge(scenario(2, **other), history(), final_state(2), run_dir=None).exit_code == EXIT_FAIL
    assert judge(scenario(3, **other), history(), final_state(3), run_dir=None).exit_code == EXIT_PASS
    # thresholds still count when no failure is expected
    s = dataclasses.replace(scenario(3, **other), thresholds={"oversold_units": ("value>5",)})
    assert judge(s, history(), final_state(3), run_dir=None).exit_code == EXIT_THRESHOLD


def test_results_json_carries_the_expectation_and_keeps_its_schema():
    s = scenario(2, **OVERSOLD)
    j = judge(s, history(), final_state(2), run_dir=None)
    body = results_body(s, j.verdict, j.evaluation, elapsed_s=1.0, expectation=j.expectation)
    validate_results(body)
    assert body["expectation"]["met"] is True and body["expectation"]["invariant"] == ["no_oversell"]
    assert "expectation" not in results_body(s, j.verdict, j.evaluation, elapsed_s=1.0)


@pytest.mark.parametrize("path", sorted((REPO / "scenarios").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_scenario_loads_and_an_expected_failure_names_its_strategy(path):
    s = load_scenario(path)
    if s.expect.expects_failure:
        assert s.expect.strategy == s.sale.strategy, "a shipped scenario expects a failure of its own strategy"
        # written out, so a copy of the file with another sale.strategy does not carry the expectation along
        assert "strategy" in yaml.safe_load(path.read_text())["expect"]


def test_the_run_directory_says_the_expectation_was_met(tmp_path):
    from synthetic_run import make_run_dir

    run_dir = make_run_dir(tmp_path / "run", stock=2)
    j = judge(scenario(2, **OVERSOLD), history(), final_state(2), run_dir=run_dir)
    assert j.exit_code == EXIT_PASS
    results = (run_dir / "results.json").read_text()
    assert '"met": true' in results
    assert '<property name="expectation" value="met"' in (run_dir / "junit.xml").read_text()
