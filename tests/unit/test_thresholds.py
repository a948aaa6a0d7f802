"""k6-style thresholds: the grammar, errors with field paths, evaluation, and exit status 3."""

from __future__ import annotations

import pytest
import yaml

from oversold.analysis.metrics import Metric, Metrics
from oversold.analysis.thresholds import ThresholdResult, evaluate
from oversold.errors import ScenarioError
from oversold.model.exit_codes import exit_status
from oversold.model.scenario import Scenario
from oversold.model.scenario_file import dump_scenario, parse_scenario
from oversold.model.thresholds import ThresholdSyntaxError, parse_expression, parse_thresholds


@pytest.mark.parametrize("metric, expr, stat, op, value", [
    ("latency.order", "p(99)<50", "p(99)", "<", 50.0),
    ("latency.order", "p(99.9) <= 120.5", "p(99.9)", "<=", 120.5),
    ("latency.order", "p(95.0)>1e-3", "p(95)", ">", 0.001),
    ("latency.pay", "med>=3", "med", ">=", 3.0),
    ("latency.cancel", "count==0", "count", "==", 0.0),
    ("sync_lag", "max<2000", "max", "<", 2000.0),
    ("fill_rate.legit", "rate>0.9", "rate", ">", 0.9),
    ("errors", "rate!=1", "rate", "!=", 1.0),
    ("bot_hold_share.peak", "value<0.2", "value", "<", 0.2),
    ("requests", "count>-5", "count", ">", -5.0),
])
def test_grammar_accepts_k6_expressions(metric, expr, stat, op, value):
    t = parse_expression(metric, expr)
    assert (t.metric, t.stat, t.op, t.value) == (metric, stat, op, value)


@pytest.mark.parametrize("metric, expr, fragment", [
    ("latency.order", "p(99)<<50", "is not a number"),
    ("latency.order", "p99<50", "is not <stat><op><number>"),
    ("latency.order", "p(101)<50", "from 0 to 100"),
    ("latency.order", "p(x)<50", "p(N)"),
    ("latency.order", "avg < fast", "is not a number"),
    ("latency.order", "mean<5", "unknown statistic 'mean'"),
    ("latency.order", "rate<0.1", "has no rate"),
    ("errors", "p(99)<1", "has no p(99)"),
    ("throughput", "count>1", "has no count"),
    ("errors", "rate=0", "is not <stat><op><number>"),
    ("errors", "rate<inf", "is not a number"),
    ("errors", 0.01, "must be a string"),
    ("latency.nope", "p(99)<1", "unknown metric"),
])
def test_grammar_rejects_bad_expressions_with_a_reason(metric, expr, fragment):
    with pytest.raises(ThresholdSyntaxError) as info:
        parse_expression(metric, expr)
    assert fragment in str(info.value)


def test_every_problem_is_listed_with_its_field_path():
    specs, problems = parse_thresholds({
        "latency.order": ["p(99)<50", "p(99)<<50"],
        "latency.ordr": ["p(99)<50"],
        "errors": "rate<0.01",
        "sync_lag": [],
        "fill_rate.legit": ["rate>0.9", "value>1"],
    })
    assert [s.expression for s in specs] == ["p(99)<50", "rate>0.9"]
    assert len(problems) == 5
    assert problems[0].startswith("thresholds.latency.order[1]: ")
    assert problems[1].startswith("thresholds.latency.ordr: unknown metric")
    assert problems[2].startswith("thresholds.errors: must be a non-empty list")
    assert problems[3].startswith("thresholds.sync_lag: must be a non-empty list")
    assert problems[4].startswith("thresholds.fill_rate.legit[1]: ")
    assert parse_thresholds(["rate<1"])[1] == [
        "thresholds: must be a mapping of metric name to a list of expressions, got list"]


def test_scenario_load_raises_with_paths_and_keeps_valid_thresholds():
    with pytest.raises(ScenarioError) as info:
        parse_scenario({"thresholds": {"latency.order": ["p(99)<50", "nonsense"]}, "sale": {"stock": -1}}, "t.yaml")
    assert any(p.startswith("thresholds.latency.order[1]: ") for p in info.value.problems)
    assert any(p.startswith("sale.stock") for p in info.value.problems)
    s = parse_scenario({"thresholds": {"latency.order": ["p(99)<50"], "errors": ["rate<0.01"]}})
    assert s.thresholds == {"latency.order": ("p(99)<50",), "errors": ("rate<0.01",)}
    # the scenario as run (scenario.yaml of the run directory) keeps them
    assert parse_scenario(yaml.safe_load(dump_scenario(s))) == s
    assert parse_scenario({}).thresholds == {} == Scenario().thresholds


def _metrics() -> Metrics:
    return Metrics(
        values={
            "latency.order": Metric.trend("latency.order", [10.0, 20.0, 30.0, 40.0]),
            "latency.cancel": Metric.trend("latency.cancel", [], "no cancel request completed in this run"),
            "errors": Metric("errors", "rate", {"rate": 0.02, "count": 2}),
            "sold_out_s": Metric.gauge("sold_out_s", None, "the sale never sold out"),
        },
        missing={"sync_lag": "no timeline sample carries sync_lag_ms"},
    )


@pytest.mark.parametrize("expr, passed", [
    ("p(50)<25.1", True), ("p(50)<25", False), ("p(50)<=25", True), ("p(50)>25", False),
    ("p(50)>=25", True), ("p(50)==25", True), ("p(50)!=25", False), ("max<40", False), ("count==4", True),
])
def test_each_operator_compares_the_observed_statistic(expr, passed):
    (r,) = evaluate([parse_expression("latency.order", expr)], _metrics())
    assert r.passed is passed
    assert r.observed == (25.0 if expr.startswith("p(50)") else 40.0 if expr.startswith("max") else 4)


def test_an_unmeasured_metric_or_statistic_fails_and_says_why():
    specs = [parse_expression(m, e) for m, e in [
        ("sync_lag", "max<2000"), ("latency.cancel", "p(99)<50"), ("latency.cancel", "count==0"),
        ("sold_out_s", "value<10"), ("leaked_units", "value==0"), ("errors", "rate<0.01")]]
    r = evaluate(specs, _metrics())
    assert [x.passed for x in r] == [False, False, True, False, False, False]
    assert r[0].observed is None and "sync_lag was not measured in this run" in r[0].message
    assert "sync_lag_ms" in r[0].message
    assert "no cancel request completed" in r[1].message
    assert "never sold out" in r[3].message
    assert "leaked_units was not measured" in r[4].message
    assert r[5].observed == 0.02 and "breaks rate<0.01" in r[5].message
    assert r[5].to_dict() == {"metric": "errors", "expression": "rate<0.01", "observed": 0.02, "passed": False,
                              "message": r[5].message}


def test_exit_status_threshold_failure_is_3_only_when_the_verdict_passes():
    failed = [ThresholdResult("errors", "rate<0.01", 0.5, False, "")]
    ok = [ThresholdResult("errors", "rate<0.01", 0.0, True, "")]
    assert exit_status("pass", []) == 0
    assert exit_status("pass", ok) == 0
    assert exit_status("pass", failed) == 3
    assert exit_status("fail", failed) == 1
    assert exit_status("inconclusive", failed) == 2


