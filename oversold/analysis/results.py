"""What a checked run leaves behind: ``results.json``, ``junit.xml`` and ``report.html``.

The orchestrator (after a run) and ``oversold check`` (on a saved run directory)
both call ``write_outputs``: it reads the optional inputs of the run directory
(``timeline.jsonl``, ``faults.jsonl``), computes the metrics, evaluates the
scenario's thresholds and writes the three files. ``evaluate_run`` and
``results_body`` are pure, for tests and other callers.

``results.json`` is described by ``oversold/analysis/results.schema.json`` (JSON Schema
draft 2020-12): ``verdict``, ``totals``, ``invariants``, ``thresholds``,
``metrics``, ``scenario`` and, after a run, ``elapsed_s``.

Usage::

    verdict = check(ops, final, grace_ms=scenario.checker.grace_ms)
    evaluation = write_outputs(run_dir, scenario, ops, final, verdict, elapsed_s=12.5)
    failed = [t for t in evaluation.thresholds if not t.passed]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from oversold.checker import SaleView, Verdict
from oversold.model.expect import Met
from oversold.model.history import FinalState, Op
from oversold.model.scenario import Scenario
from oversold.model.timeline import FAULTS_FILE, TIMELINE_FILE, read_faults, read_timeline

from .evaluation import Evaluation, evaluate_run

SCHEMA_PATH = Path(__file__).with_name("results.schema.json")
RESULTS_FILE, JUNIT_FILE, REPORT_FILE = "results.json", "junit.xml", "report.html"


def results_body(scenario: Scenario, verdict: Verdict, evaluation: Evaluation | None,
                 *, elapsed_s: float | None, expectation: Met | None = None) -> dict[str, Any]:
    """The ``results.json`` document: the verdict first, then thresholds, metrics and what ran."""
    body = verdict.to_dict()
    if evaluation is not None:
        body["thresholds"] = [t.to_dict() for t in evaluation.thresholds]
        body["metrics"] = evaluation.metrics.to_dict()
    else:
        body["thresholds"], body["metrics"] = [], {}
    body["scenario"] = {"name": scenario.name, "strategy": scenario.sale.strategy, "seed": scenario.seed}
    if expectation is not None:
        exp = scenario.expect
        body["expectation"] = {"verdict": exp.verdict, "invariant": list(exp.invariant),
                               "may_also_fail": list(exp.may_also_fail), "strategy": exp.strategy,
                               **expectation.to_dict()}
    if elapsed_s is not None:
        body["elapsed_s"] = round(elapsed_s, 3)
    return body


def write_outputs(
    run_dir: Path,
    scenario: Scenario,
    ops: Sequence[Op],
    final: FinalState,
    verdict: Verdict,
    *,
    elapsed_s: float | None,
    out_dir: Path | None = None,
    view: SaleView | None = None,
    expectation: Met | None = None,
) -> Evaluation:
    """Evaluate the run and write ``results.json``, ``junit.xml`` and ``report.html`` into ``out_dir``
    (default ``run_dir``, which holds the timeline and faults the report reads). ``view`` is the
    checker's ``SaleView`` of this history when the caller has it (the pairs are then not made again).

    With ``elapsed_s=None`` (a re-check) the ``elapsed_s`` of an earlier
    ``results.json`` is kept: re-checking does not change how long the run took.
    """
    from .html import render_report
    from .junit import junit_xml

    timeline = read_timeline(run_dir / TIMELINE_FILE)
    faults = read_faults(run_dir / FAULTS_FILE)
    evaluation = evaluate_run(scenario, ops, final, verdict, timeline=timeline, faults=faults, view=view)
    if elapsed_s is None:
        elapsed_s = _previous_elapsed(run_dir / RESULTS_FILE)
    out_dir = run_dir if out_dir is None else out_dir
    # results.json first: whatever happens to the other two, the verdict is on disk
    body = results_body(scenario, verdict, evaluation, elapsed_s=elapsed_s, expectation=expectation)
    (out_dir / RESULTS_FILE).write_text(json.dumps(body, indent=2), encoding="utf-8")
    (out_dir / JUNIT_FILE).write_text(
        junit_xml(verdict, evaluation.thresholds, suite=f"oversold.{scenario.name}",
                  properties={"strategy": scenario.sale.strategy, "seed": str(scenario.seed),
                              "verdict": verdict.overall,
                              # an expected failure's cases fail in the XML too; this says the run met it
                              **({"expectation": "met" if expectation.met else "not met"}
                                 if expectation is not None else {})},
                  elapsed_s=elapsed_s),
        encoding="utf-8")
    (out_dir / REPORT_FILE).write_text(
        render_report(scenario, verdict, evaluation, ops, final, timeline=timeline, faults=faults,
                      elapsed_s=elapsed_s),
        encoding="utf-8")
    return evaluation


def _previous_elapsed(path: Path) -> float | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("elapsed_s")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def load_schema() -> dict[str, Any]:
    """The JSON Schema of ``results.json``."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_results(body: Mapping[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``body`` matches ``results.schema.json``.

    Needs ``jsonschema`` (the ``test`` extra); the harness itself never validates,
    so it runs without it.

    Usage::

        validate_results(json.loads((run_dir / "results.json").read_text()))
    """
    import jsonschema

    jsonschema.Draft202012Validator(load_schema()).validate(body)
