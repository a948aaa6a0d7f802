"""Thresholds on soft metrics, written the way k6 writes them.

A scenario's ``thresholds`` section maps a metric name to a list of
expressions ``<stat><op><number>``::

    thresholds:
      latency.order: ["p(99)<50", "avg<20"]
      fill_rate.legit: ["rate>0.9"]
      bot_hold_share.peak: ["value<0.2"]
      errors: ["rate<0.01"]

``stat`` is one of ``p(N)`` (0 <= N <= 100), ``avg``, ``min``, ``max``, ``med``,
``count``, ``rate``, ``value`` and must be a statistic the metric has (see
``oversold.model.metric_spec``); ``op`` is one of ``<``, ``<=``, ``>``, ``>=``, ``==``,
``!=``. Parsing happens when the scenario loads: an unknown metric or a
malformed expression is a problem with its field path, never a silent pass.
Evaluation (``oversold.analysis.thresholds.evaluate``) is pure; a metric (or
statistic) the run did not measure fails.

Usage::

    specs, problems = parse_thresholds({"errors": ["rate<0.01"]})
    assert not problems
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from .metric_spec import METRICS, is_stat_of

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
STATS = ("p(N)", "avg", "min", "max", "med", "count", "rate", "value")

# Two-character operators first in the alternation so "<=" never parses as "<" then "=0.5".
_EXPR = re.compile(
    r"^\s*(?P<stat>p\(\s*[^)]*\)|[a-z]+)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<num>[^\s]+)\s*$"
)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_PCT = re.compile(r"^p\(\s*(\d+(?:\.\d+)?)\s*\)$")


@dataclass(frozen=True)
class Threshold:
    """One parsed threshold: ``metric`` must satisfy ``stat op value``.

    Usage::

        t = parse_expression("latency.order", "p(99)<50")
        (t.stat, t.op, t.value)            # ("p(99)", "<", 50.0)
        t.holds(42.0)                      # True
    """

    metric: str
    expression: str
    stat: str
    op: str
    value: float

    def holds(self, observed: float) -> bool:
        return OPERATORS[self.op](observed, self.value)


class ThresholdSyntaxError(ValueError):
    """An expression that is not ``<stat><op><number>`` or names a statistic the metric lacks."""


def parse_expression(metric: str, expression: Any) -> Threshold:
    """Parse one expression for ``metric``; raises ThresholdSyntaxError with a readable reason."""
    if metric not in METRICS:
        raise ThresholdSyntaxError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if not isinstance(expression, str):
        raise ThresholdSyntaxError(f"must be a string like \"p(99)<50\", got {expression!r}")
    m = _EXPR.match(expression)
    if not m:
        raise ThresholdSyntaxError(
            f"{expression!r} is not <stat><op><number> (e.g. \"p(99)<50\", \"rate>0.9\"); "
            f"operators: {', '.join(OPERATORS)}")
    stat, op, num = m.group("stat"), m.group("op"), m.group("num")
    pct = _PCT.match(stat)
    if stat.startswith("p("):
        if not pct or not 0 <= float(pct.group(1)) <= 100:
            raise ThresholdSyntaxError(f"{expression!r}: a percentile is p(N) with N a number from 0 to 100")
        stat = f"p({_fmt_number(float(pct.group(1)))})"
    elif stat not in STATS:
        raise ThresholdSyntaxError(f"{expression!r}: unknown statistic {stat!r}; known: {', '.join(STATS)}")
    spec = METRICS[metric]
    if not is_stat_of(stat, spec.kind):
        raise ThresholdSyntaxError(
            f"{expression!r}: {metric} is a {spec.kind} and has no {stat}; it has {', '.join(spec.stats)}")
    if not _NUMBER.match(num) or not math.isfinite(float(num)):
        raise ThresholdSyntaxError(f"{expression!r}: {num!r} is not a number")
    return Threshold(metric=metric, expression=expression.strip(), stat=stat, op=op, value=float(num))


def _fmt_number(x: float) -> str:
    return str(int(x)) if x == int(x) else repr(x)


def parse_thresholds(data: Any, path: str = "thresholds") -> tuple[tuple[Threshold, ...], list[str]]:
    """Parse a ``thresholds`` mapping; returns the thresholds and every problem with its field path.

    Usage::

        specs, problems = parse_thresholds({"latency.order": ["p(99)<<50"]})
        problems   # ["thresholds.latency.order[0]: 'p(99)<<50': '<50' is not a number"]
    """
    if data is None:
        return (), []
    if not isinstance(data, Mapping):
        return (), [f"{path}: must be a mapping of metric name to a list of expressions, got {type(data).__name__}"]
    specs: list[Threshold] = []
    problems: list[str] = []
    for metric, exprs in data.items():
        where = f"{path}.{metric}"
        if not isinstance(metric, str) or metric not in METRICS:
            problems.append(f"{where}: unknown metric; known: {', '.join(METRICS)}")
            continue
        if not isinstance(exprs, list) or not exprs:
            problems.append(f"{where}: must be a non-empty list of expressions like [\"p(99)<50\"], got {exprs!r}")
            continue
        for i, expr in enumerate(exprs):
            try:
                specs.append(parse_expression(metric, expr))
            except ThresholdSyntaxError as e:
                problems.append(f"{where}[{i}]: {e}")
    return tuple(specs), problems


def thresholds_of(data: Mapping[str, Iterable[str]]) -> tuple[Threshold, ...]:
    """Parse thresholds already validated by the scenario (raises ThresholdSyntaxError if not)."""
    specs, problems = parse_thresholds({k: list(v) for k, v in data.items()})
    if problems:
        raise ThresholdSyntaxError("; ".join(problems))
    return specs
