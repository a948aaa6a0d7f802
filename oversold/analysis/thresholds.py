"""Thresholds evaluated on a run's metrics: each one holds, breaks, or was not measured (and fails).

The threshold language and its parser are ``oversold.model.thresholds``.

Usage::

    results = evaluate(thresholds_of(scenario.thresholds), compute_metrics(ops, final))
    if not all(r.passed for r in results):
        ...  # exit 3
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from oversold.model.thresholds import Threshold

from .metrics import Metrics


@dataclass(frozen=True)
class ThresholdResult:
    """The outcome of one threshold; ``observed`` is None when the run did not measure it.

    Usage::

        r = evaluate([t], metrics)[0]
        print(r.metric, r.expression, r.observed, r.passed, r.message)
    """

    metric: str
    expression: str
    observed: float | int | None
    passed: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        observed = round(self.observed, 6) if isinstance(self.observed, float) else self.observed
        return {"metric": self.metric, "expression": self.expression, "observed": observed,
                "passed": self.passed, "message": self.message}


def evaluate(thresholds: Iterable[Threshold], metrics: Metrics) -> tuple[ThresholdResult, ...]:
    """Check every threshold against the run's metrics; unmeasured means failed, with the reason."""
    results = []
    for t in thresholds:
        metric = metrics.get(t.metric)
        if metric is None:
            why = metrics.missing.get(t.metric, "the run produced no such metric")
            results.append(ThresholdResult(t.metric, t.expression, None, False,
                                           f"{t.metric} was not measured in this run: {why}."))
            continue
        observed = metric.stat(t.stat)
        if observed is None:
            why = metric.note or "no value"
            results.append(ThresholdResult(t.metric, t.expression, None, False,
                                           f"{t.metric} {t.stat} has no value in this run: {why}."))
            continue
        passed = t.holds(observed)
        shown = _show(observed)
        results.append(ThresholdResult(
            t.metric, t.expression, observed, passed,
            f"{t.metric} {t.stat} = {shown}, " + ("within" if passed else "breaks") + f" {t.expression}."))
    return tuple(results)


def _show(x: float | int) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)
