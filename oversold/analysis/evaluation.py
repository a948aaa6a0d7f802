"""The soft side of a run: its metrics, and the scenario's thresholds evaluated on them. Pure.

Usage::

    ev = evaluate_run(scenario, ops, final, verdict, timeline=samples, faults=periods)
    ev.thresholds_passed            # True when there are none
    ev.metrics.stat("latency.order", "p(99)")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from oversold.checker import SaleView, Verdict
from oversold.model.history import FinalState, Op
from oversold.model.scenario import Scenario
from oversold.model.thresholds import thresholds_of
from oversold.model.timeline import FaultPeriod, TimelineSample

from .metrics import Metrics, compute_metrics
from .thresholds import ThresholdResult, evaluate


@dataclass(frozen=True)
class Evaluation:
    """The soft side of a run: its metrics and the outcome of each threshold.

    Usage::

        ev = evaluate_run(scenario, ops, final, verdict)
        ev.thresholds_passed            # True when there are none
        ev.metrics.stat("latency.order", "p(99)")
    """

    metrics: Metrics
    thresholds: tuple[ThresholdResult, ...]

    @property
    def thresholds_passed(self) -> bool:
        return all(t.passed for t in self.thresholds)

    @property
    def failed_thresholds(self) -> tuple[ThresholdResult, ...]:
        return tuple(t for t in self.thresholds if not t.passed)


def evaluate_run(
    scenario: Scenario,
    ops: Sequence[Op],
    final: FinalState,
    verdict: Verdict,
    *,
    timeline: Sequence[TimelineSample] = (),
    faults: Sequence[FaultPeriod] = (),
    view: SaleView | None = None,
) -> Evaluation:
    """Metrics of the run, and the scenario's thresholds evaluated on them (pure); ``view``: the checker's
    view of this history, if the caller has it."""
    metrics = compute_metrics(ops, final, timeline=timeline, faults=faults, totals=verdict.totals, view=view)
    return Evaluation(metrics=metrics, thresholds=evaluate(thresholds_of(scenario.thresholds), metrics))
