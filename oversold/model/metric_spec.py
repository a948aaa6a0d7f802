"""The metrics a run measures, by name: kind, unit and meaning (the catalog thresholds may name).

Every metric has a *kind* that decides which statistics it has, the way k6's
metric types do (see ``oversold.analysis.metrics`` for how each is computed).
An unknown metric name in a scenario's thresholds is an error at load time.

Usage::

    METRICS["latency.order"].kind          # "trend"
    is_stat_of("p(99)", "trend")           # True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

MetricKind = Literal["trend", "rate", "counter", "gauge"]

#: Kinds of users who buy to use: what they get counts towards the legit fill rate.
#: Every other kind (``hoarder``, ``scalper``, ...) is a bot.
LEGIT_KINDS = frozenset({"buyer", "late_payer", "double_clicker", "simultaneous_payer", "sessions", "mind_changer"})

#: Operations that get a ``latency.<op>`` trend.
LATENCY_OPS = ("order", "pay", "cancel")

#: The quantiles a trend reports in results.json (any other ``p(N)`` is computed on demand).
REPORTED_QUANTILES = (50, 90, 95, 99)

STATS_BY_KIND: dict[str, tuple[str, ...]] = {
    "trend": ("p(N)", "avg", "min", "max", "med", "count"),
    "rate": ("rate", "count"),
    "counter": ("count", "rate"),
    "gauge": ("value",),
}


@dataclass(frozen=True)
class MetricSpec:
    """What a metric is: its kind (which decides its statistics), unit and meaning.

    Usage::

        METRICS["latency.order"].kind     # "trend"
        METRICS["errors"].stats           # ("rate", "count")
    """

    name: str
    kind: MetricKind
    unit: str
    description: str

    @property
    def stats(self) -> tuple[str, ...]:
        return STATS_BY_KIND[self.kind]


def _specs(*specs: MetricSpec) -> dict[str, MetricSpec]:
    return {s.name: s for s in specs}


#: Every metric a threshold may name. An unknown name is an error at scenario load.
METRICS: dict[str, MetricSpec] = _specs(
    *(MetricSpec(f"latency.{op}", "trend", "ms", f"latency of completed {op} requests") for op in LATENCY_OPS),
    MetricSpec("requests", "counter", "requests", "operations invoked (rate: per second of the run)"),
    MetricSpec("throughput", "gauge", "1/s", "completions per second over the run"),
    MetricSpec("errors", "rate", "share", "operations with an unknown outcome (info or never completed); "
                                          "business refusals like sold_out are not errors"),
    MetricSpec("fill_rate.legit", "rate", "share", "units sold to legit buyers / stock (count: those units); "
                                                   "above 1 only when the sale oversold"),
    MetricSpec("bot_hold_share.peak", "gauge", "share", "highest share of stock held by bots at any moment"),
    MetricSpec("bot_hold_share.avg", "gauge", "share", "time-weighted average share of stock held by bots"),
    MetricSpec("sold_out_s", "gauge", "s", "seconds from the first request until nothing was available or held"),
    MetricSpec("sync_lag", "trend", "ms", "front-to-warehouse stock sync lag, from the timeline samples"),
    MetricSpec("oversold_units", "gauge", "units", "units sold beyond stock"),
    MetricSpec("leaked_units", "gauge", "units", "units still held at quiescence"),
    MetricSpec("faults", "counter", "faults", "faults injected during the run (rate: per second)"),
)


_P = re.compile(r"^p\((\d+(?:\.\d+)?)\)$")


def is_stat_of(stat: str, kind: str) -> bool:
    """Whether ``stat`` (``p(99)``, ``avg``, ``rate``...) is a statistic of a metric kind."""
    allowed = STATS_BY_KIND[kind]
    if stat in allowed:
        return True
    m = _P.match(stat)
    return bool(m) and "p(N)" in allowed and 0 <= float(m.group(1)) <= 100
