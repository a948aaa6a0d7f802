"""What a checked run leaves behind: results.json (against its schema), junit.xml and report.html.

The run directories are synthetic (``synthetic_run``) but written and checked
with the real functions; ``report.html`` is opened in a real headless Chromium.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from synthetic_run import OVERSOLD_ORDER, make_run_dir

from oversold.analysis.html import MAX_EXAMPLES_ON_PAGE
from oversold.analysis.results import load_schema, results_body, validate_results, write_outputs
from oversold.analysis.summary import format_summary
from oversold.checker import InvariantResult, Totals, Verdict, check
from oversold.model.history import FinalState, read_history
from oversold.model.scenario_file import load_scenario
from oversold.model.timeline import read_jsonl_tolerant

THRESHOLDS = {"latency.order": ["p(99)<20", "count>=5"], "sync_lag": ["max<2000"], "errors": ["rate<0.01"]}


def checked(run_dir: Path):
    """Check a saved run directory the way ``oversold check`` does; returns (verdict, evaluation)."""
    scenario = load_scenario(run_dir / "scenario.yaml")
    ops = read_history(run_dir / "history.jsonl")
    final = FinalState.from_dict(json.loads((run_dir / "final_state.json").read_text()))
    verdict = check(ops, final, grace_ms=scenario.checker.grace_ms, expect_sell_out=scenario.checker.expect_sell_out)
    return verdict, write_outputs(run_dir, scenario, ops, final, verdict, elapsed_s=4.25)


def validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


# --------------------------------------------------------------------------- results.json


@pytest.mark.parametrize("stock, audit, verdict", [(3, True, "pass"), (2, True, "fail"), (3, False, "inconclusive")])
def test_results_json_from_real_code_matches_its_schema(tmp_path, stock, audit, verdict):
    run = make_run_dir(tmp_path / "run", stock=stock, audit=audit, thresholds=THRESHOLDS)
    checked(run)
    body = json.loads((run / "results.json").read_text())
    validator().validate(body)
    validate_results(body)
    assert body["verdict"] == verdict
    assert body["elapsed_s"] == 4.25
    assert {"stock", "sold", "oversold_units"} <= set(body["totals"])
    assert [t["metric"] for t in body["thresholds"]] == ["latency.order", "latency.order", "sync_lag", "errors"]
    assert "latency.order" in body["metrics"] and "sync_lag" not in body["metrics"]


def test_schema_catches_what_it_documents(tmp_path):
    run = make_run_dir(tmp_path / "run", thresholds=THRESHOLDS)
    checked(run)
    body = json.loads((run / "results.json").read_text())
    v = validator()
    with pytest.raises(jsonschema.ValidationError):
        validate_results({**body, "verdict": "maybe"})
    for broken in (
        {**body, "verdict": "maybe"},
        {**body, "surprise": 1},
        {**body, "metrics": {**body["metrics"], "latency.ordr": {"count": 1}}},
        {**body, "thresholds": [{**body["thresholds"][2], "passed": True}]},   # unmeasured yet passed
        {**body, "invariants": [{**body["invariants"][0], "status": "ok"}]},
        {k: val for k, val in body.items() if k != "totals"},
    ):
        assert not v.is_valid(broken)


def test_a_recheck_keeps_elapsed_and_results_without_thresholds_still_validate(tmp_path):
    run = make_run_dir(tmp_path / "run")
    scenario, verdict_and_eval = load_scenario(run / "scenario.yaml"), checked(run)
    ops = read_history(run / "history.jsonl")
    final = FinalState.from_dict(json.loads((run / "final_state.json").read_text()))
    write_outputs(run, scenario, ops, final, verdict_and_eval[0], elapsed_s=None)
    body = json.loads((run / "results.json").read_text())
    assert body["elapsed_s"] == 4.25 and body["thresholds"] == []
    validator().validate(body)
    validator().validate(results_body(scenario, verdict_and_eval[0], None, elapsed_s=None))


def test_timeline_reader_skips_a_torn_last_line(tmp_path):
    run = make_run_dir(tmp_path / "run")
    rows = read_jsonl_tolerant(run / "timeline.jsonl")
    assert len(rows) == 7 and rows[-1]["sold"] == 3
    assert read_jsonl_tolerant(run / "nope.jsonl") == []


# --------------------------------------------------------------------------- summary and junit.xml


def test_summary_prints_the_thresholds(tmp_path):
    run = make_run_dir(tmp_path / "run", thresholds=THRESHOLDS)
    verdict, ev = checked(run)
    text = format_summary(verdict, thresholds=ev.thresholds)
    assert "thresholds: 2 of 4 passed, 2 FAILED" in text
    assert "[FAIL] sync_lag max<2000: sync_lag was not measured" in text
    assert "[ok  ] latency.order count>=5" in text


def test_junit_has_one_testcase_per_invariant_and_threshold(tmp_path):
    run = make_run_dir(tmp_path / "run", stock=2, thresholds=THRESHOLDS)
    verdict, ev = checked(run)
    root = ET.parse(run / "junit.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "oversold.synthetic"
    cases = suite.findall("testcase")
    assert len(cases) == len(verdict.invariants) + 4 == int(suite.get("tests"))
    inv = {c.get("name"): c for c in cases if c.get("classname") == "oversold.invariants"}
    assert set(inv) == {i.name for i in verdict.invariants}
    failure = inv["no_oversell"].find("failure")
    assert failure is not None and "oversold" in failure.get("message")
    assert OVERSOLD_ORDER in failure.text and "buyer-3<script>alert(" in failure.text   # intact once parsed
    assert "buyer-3&lt;script&gt;" in (run / "junit.xml").read_text()                    # escaped in the file
    assert inv["no_lost_sale"].find("failure") is None and inv["no_lost_sale"].find("skipped") is None
    th = [c for c in cases if c.get("classname") == "oversold.thresholds"]
    assert [c.get("name") for c in th] == ["latency.order: p(99)<20", "latency.order: count>=5",
                                           "sync_lag: max<2000", "errors: rate<0.01"]
    assert [c.find("failure") is not None for c in th] == [True, False, True, False]
    assert suite.get("failures") == str(2 + 2)
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["verdict"] == "fail" and props["strategy"] == "pre_deduct"


def test_summary_and_junit_say_how_many_counterexamples_they_leave_out():
    from oversold.analysis.junit import JUNIT_EXAMPLES, junit_xml

    examples = tuple({"order_id": f"o-{i}"} for i in range(25))
    totals = Totals(stock=1, sold=26, oversold_units=25, refunded_sold_units=0, captured_payments=None, acked_paid=26,
                    acked_paid_orders=26, held=0, demand=26, ops=52, ok_ops=52, fail_ops=0, info_ops=0,
                    ledger_stock=None, ledger_sold=None, sync_lag_ms=None)
    verdict = Verdict("fail", totals, (InvariantResult("no_oversell", "fail", "oversold.", examples),
                                   InvariantResult("single_payment", "fail", "paid twice.", examples[:2])))
    summary = format_summary(verdict, max_examples=3)
    assert summary.count("e.g.") == 3 + 2
    assert "... and 22 more (all 25 in results.json and report.html)" in summary
    assert summary.count("more (all") == 1  # nothing is left out of the second one
    failure = ET.fromstring(junit_xml(verdict)).find("testsuite/testcase[@name='no_oversell']/failure")
    assert f"{JUNIT_EXAMPLES} of 25 counterexamples (all in results.json)" in failure.text
    assert failure.text.count("o-") == JUNIT_EXAMPLES


def test_junit_marks_undecided_invariants_skipped_with_the_reason(tmp_path):
    run = make_run_dir(tmp_path / "run", audit=False)
    checked(run)
    suite = ET.parse(run / "junit.xml").getroot().find("testsuite")
    skipped = {c.get("name"): c.find("skipped") for c in suite.findall("testcase") if c.find("skipped") is not None}
    assert "conservation" in skipped and "audit is missing" in skipped["conservation"].get("message")
    assert suite.get("skipped") == str(len(skipped)) and len(skipped) == 7


# --------------------------------------------------------------------------- report.html


def test_report_is_self_contained_and_escapes_the_run(tmp_path):
    run = make_run_dir(tmp_path / "run", stock=2, thresholds=THRESHOLDS)
    checked(run)
    html = (run / "report.html").read_text()
    assert "<script" not in html.lower()                      # neither ours nor the user id's
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)
    assert "http://" not in html and "https://" not in html
    assert '<polyline class="series" data-series="available"' in html
    assert 'data-series="refunded"' in html                   # the samples have it
    # one band in each chart with data: timeline, requests/s, order and pay latency (no cancel happened)
    assert html.count('class="fault"') == 4
    assert OVERSOLD_ORDER in html and "no_oversell" in html


def test_results_and_report_carry_every_counterexample(tmp_path):
    run = make_run_dir(tmp_path / "run", stock=3, ghosts=25)  # 25 sold orders no client placed
    verdict, _ = checked(run)
    body = json.loads((run / "results.json").read_text())
    validator().validate(body)
    phantom = next(i for i in body["invariants"] if i["name"] == "no_phantom_sale")
    assert [c["order_id"] for c in phantom["counterexamples"]] == [f"GHOST-{i:03}" for i in range(25)]
    assert "showing" not in json.dumps(body)
    html = (run / "report.html").read_text()
    section = html[html.index('id="cx-no_phantom_sale"'):]
    section = section[:section.index("</section>")]
    assert section.count('<div class="example">') == 25
    opened, folded = section.split('<details class="more-examples">')   # one fold, closed: no `open`
    assert opened.count('<div class="example">') == 10 and folded.count('<div class="example">') == 15
    assert all(f"GHOST-{i:03}" in (opened if i < 10 else folded) for i in range(25))
    assert "the first 10 open, the other 15 folded" in opened
    assert "<summary>15 more counterexample(s) of <code>no_phantom_sale</code>: #11 to #25</summary>" in folded
    assert "<script" not in html.lower() and "showing" not in html


def test_a_run_with_thousands_of_counterexamples_keeps_the_page_small_and_all_of_them_in_results(tmp_path):
    n = MAX_EXAMPLES_ON_PAGE + 300
    run = make_run_dir(tmp_path / "run", stock=3, ghosts=n)
    checked(run)
    body = json.loads((run / "results.json").read_text())
    phantom = next(i for i in body["invariants"] if i["name"] == "no_phantom_sale")
    assert len(phantom["counterexamples"]) == n
    html = (run / "report.html").read_text()
    section = html[html.index('id="cx-no_phantom_sale"'):]
    section = section[:section.index("</section>")]
    assert section.count('<div class="example">') == MAX_EXAMPLES_ON_PAGE
    last_shown = f"GHOST-{MAX_EXAMPLES_ON_PAGE - 1:03}"
    assert last_shown in section and f"GHOST-{MAX_EXAMPLES_ON_PAGE:03}" not in section
    assert (f"300 more counterexample(s) of <code>no_phantom_sale</code>, #{MAX_EXAMPLES_ON_PAGE + 1} to #{n}, "
            f"are not on this page: results.json lists all {n}.") in section


def test_the_harness_memory_sampled_into_the_timeline_is_charted(tmp_path):
    run = make_run_dir(tmp_path / "run")
    checked(run)
    assert 'id="harness-memory"' not in (run / "report.html").read_text()  # not sampled: no chart
    with open(run / "timeline.jsonl", "a", encoding="utf-8") as f:
        f.write("\n" + "\n".join(json.dumps({"t": 1000.0 + i, "available": 0, "held": 0, "sold": 3,
                                               "harness_rss_mib": 180.0 + i}) for i in range(3)) + "\n")
    checked(run)
    html = (run / "report.html").read_text()
    assert 'id="harness-memory"' in html and "180 to 182 MiB over 3 samples" in html


def test_report_without_timeline_or_faults_says_so(tmp_path):
    run = make_run_dir(tmp_path / "run", timeline=False, faults=False)
    checked(run)
    html = (run / "report.html").read_text()
    assert "No counter timeline" in html and 'class="fault"' not in html
    assert ">PASS<" in html


# --------------------------------------------------------------------------- a real run: refunded on the timeline




def test_a_missing_audit_says_why_once_and_an_inconclusive_verdict_says_it_is_not_a_violation(tmp_path):
    from dataclasses import replace

    from oversold.analysis.judge import judge
    from oversold.analysis.summary import AUDIT_MISSING_WHY, NO_ADMIN_TOKEN

    run = make_run_dir(tmp_path / "run", stock=3, audit=False)
    scenario = load_scenario(run / "scenario.yaml")
    ops = read_history(run / "history.jsonl")
    final = FinalState.from_dict(json.loads((run / "final_state.json").read_text()))
    why = replace(final, extra={**final.extra, AUDIT_MISSING_WHY: NO_ADMIN_TOKEN})
    summary = judge(scenario, ops, why, run_dir=None).summary
    assert summary.count("OVERSOLD_ADMIN_TOKEN") == 1
    assert f"note: the audit is missing because {NO_ADMIN_TOKEN}" in summary
    assert "no invariant failed; " in summary and "exit 2, not the exit 1 of a violation" in summary
    # without a recorded reason it still says where to look, once
    plain = judge(scenario, ops, final, run_dir=None).summary
    assert plain.count("note: the audit is missing because") == 1


def test_a_cumulative_line_of_many_events_is_binned_but_ends_on_the_exact_total():
    from oversold.analysis.html import MAX_STEPS, _cumulative

    few = _cumulative([(10.0, 1), (11.0, 2)], 10.0)
    assert few == ((0.0, 0.0), (0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 3.0))  # one step per event
    many = [(100.0 + i / 1000, 1 + i % 2) for i in range(100_000)]
    pts = _cumulative(many, 100.0)
    assert len(pts) <= 2 * MAX_STEPS + 1
    assert pts[-1] == (pytest.approx(99.999), sum(u for _, u in many))  # the oversell the verdict names shows
    assert all(a[1] <= b[1] for a, b in zip(pts, pts[1:]))  # a running total never goes down
