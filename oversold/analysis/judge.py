"""The one judging step, like Jepsen's ``analyze``: check, evaluate, write, and the exit status.

Every entry point that ends a run goes through ``judge``: ``oversold run`` after
its swarm, the Locust plugin at the end of a plain ``locust -f`` run, and
``oversold check`` on a saved run directory. So the same history and final
state always give the same verdict, files and exit status, wherever they are
judged.

Usage::

    j = judge(scenario, ops, final, run_dir=run_dir, elapsed_s=12.5)
    print(j.summary)
    sys.exit(j.exit_code)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from oversold.checker import SaleView, Verdict, check_view
from oversold.model.exit_codes import exit_status
from oversold.model.expect import Met
from oversold.model.history import FinalState, Op
from oversold.model.evidence import DEFAULT_EVIDENCE, at_least
from oversold.model.scenario import Scenario

from .evaluation import Evaluation, evaluate_run
from .results import write_outputs
from .summary import AUDIT_MISSING_WHY, format_summary


@dataclass(frozen=True)
class Judgement:
    """What judging a run found: the verdict, its metrics and thresholds, the exit status, the summary."""

    verdict: Verdict
    evaluation: Evaluation
    exit_code: int
    summary: str
    expectation: Met | None = None  # how the run compares with the scenario's expect: (None: a pass is expected)


def judge(scenario: Scenario, ops: Sequence[Op], final: FinalState, *, run_dir: Path | None,
          elapsed_s: float | None = None, out_dir: Path | None = None) -> Judgement:
    """Check the history against the final state, evaluate the scenario's thresholds, write
    ``results.json``, ``junit.xml`` and ``report.html`` (into ``out_dir``, default ``run_dir``; nothing is
    written without a ``run_dir``) and decide the exit status. A scenario that expects a failure
    (``expect:``) exits 0 when the run shows exactly it, 6 when every invariant held (an unexpected pass),
    1 when other invariants failed, 2 when the expected one could not be decided; thresholds do not count
    then (they are reported).

    Raises ``BadInput`` for a malformed final state (the checker never guesses).
    """
    view = SaleView.build(ops, final)  # once: the checker and the metrics read the same pairs
    verdict = check_view(view, grace_ms=scenario.checker.grace_ms, expect_sell_out=scenario.checker.expect_sell_out)
    failed = [inv.name for inv in verdict.invariants if inv.status == "fail"]
    undecided = [inv.name for inv in verdict.invariants if inv.status == "unknown"]
    met = scenario.expect.judge(verdict.overall, failed, scenario.sale.strategy, undecided)
    if run_dir is not None:
        evaluation = write_outputs(run_dir, scenario, ops, final, verdict, elapsed_s=elapsed_s, out_dir=out_dir,
                                   view=view, expectation=met)
    else:
        evaluation = evaluate_run(scenario, ops, final, verdict, view=view)
    code = exit_status(verdict.overall, evaluation.thresholds) if met is None else met.exit_code
    return Judgement(verdict=verdict, evaluation=evaluation, exit_code=code, expectation=met,
                     summary=format_summary(verdict, run_dir=run_dir, thresholds=evaluation.thresholds,
                                            audit_missing_why=audit_missing_why(final), notes=notes_of(final),
                                            expectation=met))


def audit_missing_why(final: FinalState) -> str | None:
    """Why the final state has no audit, when the backend promised one: the reason its reader recorded, else unknown.

    A backend that declared less than an audit (``final.extra["evidence"]``) is not missing one.
    """
    extra = final.extra or {}
    if final.audit is not None or not at_least(extra.get("evidence", DEFAULT_EVIDENCE), "per_user_audit"):
        return None
    why = extra.get(AUDIT_MISSING_WHY)
    return str(why) if why else "the backend did not answer the audit request (see the backend's log)"


def notes_of(final: FinalState) -> list[str]:
    """What the summary must say beside the verdict: the backend could not be reached (it died)."""
    down = (final.extra or {}).get("unreachable")
    return [str(down)] if down else []
