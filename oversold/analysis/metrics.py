"""Soft metrics of a run: latency quantiles, throughput, fill rate, bot hold share, sync lag.

Pure: a function of the history, the counter timeline, the final state and the
fault periods. No I/O, no clock. Thresholds (``oversold.analysis.thresholds``) are
checked against what this module computes.

Every metric has a *kind* that decides which statistics it has, the way k6's
metric types do:

========  ==========================================  ===============================
kind      statistics                                  metrics
========  ==========================================  ===============================
trend     ``p(N)`` (any N in 0..100), ``avg``,        ``latency.order``, ``latency.pay``,
          ``min``, ``max``, ``med``, ``count``        ``latency.cancel`` (ms), ``sync_lag`` (ms)
rate      ``rate`` (a share), ``count``               ``errors``, ``fill_rate.legit``
counter   ``count``, ``rate`` (per second)            ``requests``, ``faults``
gauge     ``value``                                   ``throughput``, ``bot_hold_share.peak``,
                                                      ``bot_hold_share.avg``, ``sold_out_s``,
                                                      ``oversold_units``, ``leaked_units``
========  ==========================================  ===============================

A metric the run did not measure (no timeline sample carries ``sync_lag_ms``;
no audit and no counters for ``leaked_units``) is absent from ``Metrics.values``
and its reason is in ``Metrics.missing``; a statistic that has no value (the
quantiles of a trend with no samples, ``sold_out_s`` of a sale that never sold
out) is ``None``. A threshold on either fails; it never passes silently.

Usage::

    m = compute_metrics(ops, final, timeline=samples, faults=[])
    m.stat("latency.order", "p(99)")        # ms, or None without samples
    m.stat("fill_rate.legit", "rate")       # share of stock sold to legit buyers
    m.to_dict()                             # what results.json holds under "metrics"
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from itertools import accumulate
from operator import attrgetter, is_not
from typing import Any, Iterable, Mapping, Sequence

import msgspec

from oversold.checker import SaleView, Totals, totals_of
from oversold.model.calls import Call, pair
from oversold.model.gcpause import gc_paused
from oversold.model.history import FinalState, Op
from oversold.model.metric_spec import (
    LATENCY_OPS,
    LEGIT_KINDS,
    METRICS,
    REPORTED_QUANTILES,
    MetricKind,
)
from oversold.model.state import SaleState
from oversold.model.timeline import FaultPeriod, TimelineSample

Number = float | int


def quantile(sorted_values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (0..100) by linear interpolation between closest ranks.

    This is the usual definition (numpy's default, k6's trend): ``p(50)`` of
    ``[1, 2, 3, 4]`` is 2.5. ``None`` for no values.

    Usage::

        assert quantile([10.0, 20.0, 30.0], 50) == 20.0
    """
    n = len(sorted_values)
    if n == 0:
        return None
    h = (n - 1) * p / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


@dataclass(frozen=True)
class Metric:
    """One measured metric: its statistics, and for trends the samples behind them.

    ``note`` says why a statistic is ``None`` (e.g. a trend with no samples).

    Usage::

        m = Metric.trend("latency.order", [3.0, 1.0, 2.0])
        m.stat("p(50)")   # 2.0
        m.stat("count")   # 3
    """

    name: str
    kind: MetricKind
    stats: Mapping[str, Number | None]
    samples: tuple[float, ...] = ()
    note: str | None = None

    @classmethod
    def trend(cls, name: str, values: Iterable[float], note_if_empty: str | None = None) -> "Metric":
        xs = sorted(map(float, values))
        stats: dict[str, Number | None] = {f"p({q})": quantile(xs, q) for q in REPORTED_QUANTILES}
        stats.update(
            avg=sum(xs) / len(xs) if xs else None,
            min=xs[0] if xs else None,
            max=xs[-1] if xs else None,
            count=len(xs),
        )
        return cls(name, "trend", stats, tuple(xs), None if xs else note_if_empty)

    @classmethod
    def gauge(cls, name: str, value: Number | None, note: str | None = None) -> "Metric":
        return cls(name, "gauge", {"value": value}, note=note if value is None else None)

    def stat(self, stat: str) -> Number | None:
        """The value of one statistic (``p(99.9)`` too); KeyError if the metric has no such statistic."""
        if self.kind == "trend":
            if stat == "med":
                return quantile(self.samples, 50)
            if stat.startswith("p(") and stat.endswith(")"):
                return quantile(self.samples, float(stat[2:-1]))
        if stat not in self.stats:
            raise KeyError(stat)
        return self.stats[stat]

    def to_dict(self) -> dict[str, Any]:
        return {k: _round(v) for k, v in self.stats.items()}


def _round(v: Number | None) -> Number | None:
    # JSON readers do not need 17 digits; 6 decimals keeps ms and shares exact enough.
    if isinstance(v, float):
        return round(v, 6)
    return v


@dataclass(frozen=True)
class Metrics:
    """All metrics of a run: ``values`` measured, ``missing`` not measured (name -> why).

    Usage::

        m = compute_metrics(ops, final)
        m.stat("errors", "rate")
        "sync_lag" in m.missing           # True when no sync worker reported a lag
    """

    values: Mapping[str, Metric]
    missing: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Metric | None:
        return self.values.get(name)

    def stat(self, name: str, stat: str) -> Number | None:
        metric = self.values.get(name)
        return None if metric is None else metric.stat(stat)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: self.values[name].to_dict() for name in METRICS if name in self.values}


# --------------------------------------------------------------------------- the history, paired


def user_kinds(ops: Iterable[Op]) -> dict[str, str]:
    """user id -> kind, as the history first names it."""
    records = ops if isinstance(ops, (list, tuple)) else list(ops)
    # built backwards, so the first record that names a user is the one that stays
    return {op.user_id: op.kind for op in reversed(records)}


def units_sold_by_kind(ops: Sequence[Op], state: SaleState,
                       view: SaleView | None = None) -> tuple[dict[str, int], str]:
    """Who got the stock: units sold per user kind, and where that came from.

    From the audit's sold list (its user ids mapped to kinds through the
    history; a user the history never saw is ``unknown``), else from the
    acknowledged (``ok``) pays of the history. Returns ``(units by kind,
    "audit" | "history")``. ``view``, the checker's view of this sale when the
    caller has it, spares a walk of every record: an audited order the history
    placed for the same user takes that order's kind (its user's kind, unless one
    user id comes with two kinds); the rest their user's, as without it.

    Usage::

        by_kind, source = units_sold_by_kind(ops, parse_state(final))   # ({"buyer": 480, "hoarder": 20}, "audit")
    """
    by_kind: dict[str, int] = defaultdict(int)
    if state.audit is not None:
        sold = state.audit.sold
        if view is None:
            kinds = user_kinds(ops)
            for entry in sold:
                by_kind[kinds.get(entry.user_id, "unknown")] += entry.qty
            return dict(sorted(by_kind.items())), "audit"
        placed = view.order_call
        rest = []
        for entry in sold:
            oc = placed.get(entry.order_id)
            if oc is not None and oc.user_id == entry.user_id:  # (a user's kind is its orders' kind)
                by_kind[oc.kind] += entry.qty
            else:
                rest.append(entry)
        if rest:  # sold to a user the history did not place that order for: the kind its records first name
            kinds = user_kinds([o for o in ops if o.sale_id == state.sale_id])
            for entry in rest:
                by_kind[kinds.get(entry.user_id, "unknown")] += entry.qty
        return dict(sorted(by_kind.items())), "audit"
    calls = view.calls if view is not None else pair(ops, state.sale_id)[0]
    ordered_qty = {c.order_id: c.first.qty for c in calls if c.first.op == "order" and c.outcome == "ok" and c.order_id}
    paid: dict[str, Call] = {}
    for c in calls:
        if c.first.op == "pay" and c.outcome == "ok" and c.order_id and c.order_id not in paid:
            paid[c.order_id] = c
    for oid, c in paid.items():
        by_kind[c.first.kind] += ordered_qty.get(oid, c.first.qty)
    return dict(sorted(by_kind.items())), "history"


class Hold(msgspec.Struct, frozen=True, gc=False):
    """A hold as the client saw it: live from its ok order until paid, cancelled or expired."""

    order_id: str
    user_id: str
    kind: str
    qty: int
    start: float
    end: float


def client_holds(calls: Sequence[Call], hold_ttl_ms: int, skip_kinds: frozenset[str] = frozenset()) -> list[Hold]:
    """Holds reconstructed from the history (client clock, seconds).

    A hold starts at its ``ok`` order completion and ends at the first ``ok``
    pay or cancel of that order, or at its expiry (start + TTL), whichever is
    first. A pay whose outcome is unknown does not end it: we cannot tell.
    Holds placed by users of ``skip_kinds`` are left out (after the first order
    of an id is taken: a reused id never brings in a second hold).
    """
    closed: dict[str, float] = {}
    placed: list[Call] = []
    for c in calls:  # one pass: the closing pays and cancels, and the ok orders
        if c.outcome != "ok" or not c.order_id or c.done_time is None:
            continue
        if c.op == "order":
            placed.append(c)
        elif c.op in ("pay", "cancel"):
            t = c.done_time
            prev = closed.get(c.order_id)
            if prev is None or t < prev:
                closed[c.order_id] = t
    holds = []
    seen: set[str] = set()
    ttl_s = hold_ttl_ms / 1000.0
    for c in placed:
        oid = c.order_id
        if oid in seen:
            continue
        seen.add(oid)
        if c.kind in skip_kinds:
            continue
        holds.append(_hold(c, ttl_s, closed.get(oid)))
    return holds


def _hold(placed: Call, ttl_s: float, shut: float | None) -> Hold:
    """The hold an ok order placed: from its completion to its expiry, or to ``shut`` (its first ok pay or
    cancel) when that came first (never before it started)."""
    start = placed.done_time
    assert start is not None and placed.order_id is not None
    end = start + ttl_s
    if shut is not None:  # max(start, min(end, shut)), without two calls a hold
        if shut < end:
            end = shut
        if end < start:
            end = start
    return Hold(placed.order_id, placed.user_id, placed.kind, placed.qty, start, end)


def bot_holds(view: SaleView, hold_ttl_ms: int) -> list[Hold]:
    """``client_holds(view.calls, hold_ttl_ms, skip_kinds=LEGIT_KINDS)`` read from the view's indexes: only the
    bots' first ok orders are looked at, and only their own pays and cancels (a unit test holds the two equal)."""
    bots = [c for c in view.order_call.values() if c.kind not in LEGIT_KINDS]
    if not bots:
        return []
    wanted = {c.order_id for c in bots}
    cancels: dict[str, float] = {}  # order id -> its first ok cancel's completion
    for c in view.calls_of("cancel"):
        oid = c.order_id
        if c.outcome == "ok" and oid in wanted and c.done_time is not None:
            prev = cancels.get(oid)  # type: ignore[arg-type]
            if prev is None or c.done_time < prev:
                cancels[oid] = c.done_time  # type: ignore[index]
    holds = []
    ttl_s = hold_ttl_ms / 1000.0
    pays = view.pays
    for c in bots:
        shut = cancels.get(c.order_id)  # type: ignore[arg-type]
        for p in pays.get(c.order_id, ()):  # type: ignore[arg-type]
            if p.outcome == "ok" and p.done_time is not None and (shut is None or p.done_time < shut):
                shut = p.done_time
        holds.append(_hold(c, ttl_s, shut))
    return holds


def _held_curve(holds: Iterable[Hold]) -> list[tuple[float, int]]:
    """Step function (time, units held from then on) of the given holds."""
    deltas: dict[float, int] = defaultdict(int)
    for h in holds:
        if h.end > h.start:
            deltas[h.start] += h.qty
            deltas[h.end] -= h.qty
    times = sorted(deltas)
    return list(zip(times, accumulate(map(deltas.__getitem__, times))))


def bot_hold_share(holds: Sequence[Hold], stock: int, window: tuple[float, float] | None) -> tuple[float | None, float | None]:
    """(peak, time-weighted average) share of stock held by bot kinds over the window."""
    if stock <= 0:
        return None, None
    curve = _held_curve(h for h in holds if h.kind not in LEGIT_KINDS)  # (the caller may have left them out)
    peak = max((level for _, level in curve), default=0) / stock
    if window is None or window[1] <= window[0]:
        return peak, None
    lo, hi = window
    area = 0.0
    ends = [t for t, _ in curve[1:]]
    ends.append(hi)
    for (t, level), nxt in zip(curve, ends):
        a = lo if lo > t else t  # max(t, lo) and min(nxt, hi), without two calls a step
        b = hi if hi < nxt else nxt
        if b > a:
            area += level * (b - a)
    return peak, area / ((hi - lo) * stock)


# --------------------------------------------------------------------------- the entry point


def compute_metrics(
    ops: Iterable[Op],
    final: FinalState,
    *,
    timeline: Sequence[TimelineSample] = (),
    faults: Sequence[FaultPeriod] = (),
    totals: Totals | None = None,
    view: SaleView | None = None,
) -> Metrics:
    """Compute every metric of one sale's run.

    ``ops`` is the history (records of other sales are ignored), ``timeline``
    the counter samples (samples with an ``error`` are skipped), ``faults``
    the fault periods, ``totals`` the checker's totals (``oversold_units`` is
    the checker's own number, so a threshold on it and the verdict agree;
    the checker counts it when not given). The final state is read through
    the checker's parser (``oversold.model.state``).

    ``view`` is the checker's ``SaleView`` of the same history and final state, when the caller
    has it: its calls are this sale's pairs, so they are not made again.

    The run's window is from the first record to the last one. Throughput is
    completions over that window; ``errors`` counts operations whose outcome
    is unknown (an ``info`` completion, or an invoke that never completed).

    Usage::

        m = compute_metrics(read_history(p), final, timeline=samples)
        m.stat("throughput", "value")
    """
    with gc_paused():
        return _compute_metrics(ops, final, timeline, faults, totals, view)


def _compute_metrics(ops: Iterable[Op], final: FinalState, timeline: Sequence[TimelineSample],
                     faults: Sequence[FaultPeriod], totals: Totals | None, view: SaleView | None) -> Metrics:
    sale = final.sale_id
    ops = ops if isinstance(ops, (list, tuple)) else list(ops)
    if view is None:
        view = SaleView.build(ops, final)
    state, calls, counts = view.state, view.calls, view.counts
    values: dict[str, Metric] = {}
    missing: dict[str, str] = {}

    bounds = _bounds(calls) if counts["duplicate_records"] == 0 else None
    if bounds is None:  # a record no call kept (a duplicate), or a NaN time: the records themselves
        records = [o for o in ops if o.sale_id == sale]
        start = min((o.time for o in records if o.type == "invoke"), default=None)
        if start is None and records:
            start = min(o.time for o in records)
        end = max((o.time for o in records), default=None)
    else:
        start, end = bounds
    duration = (end - start) if start is not None and end is not None else 0.0
    window = (start, end) if start is not None and end is not None and end > start else None

    # C-speed walks: a call without a completion (an unknown outcome) is "info" too
    completions = len(calls) - list(map(_DONE, calls)).count(None)
    unknown = list(map(_OUTCOME, calls)).count("info")
    for op in LATENCY_OPS:
        latencies = list(filter(_NOT_NONE, map(_LATENCY, filter(_NOT_NONE, map(_DONE, view.calls_of(op))))))
        values[f"latency.{op}"] = Metric.trend(f"latency.{op}", latencies, f"no {op} request completed in this run")

    values["requests"] = Metric("requests", "counter", {
        "count": len(calls), "rate": len(calls) / duration if duration > 0 else None})
    values["throughput"] = Metric.gauge(
        "throughput", completions / duration if duration > 0 else None,
        "the run has no time span (fewer than two records)")
    values["errors"] = Metric("errors", "rate", {"rate": unknown / len(calls) if calls else None, "count": unknown},
                              note=None if calls else "no operation in this run")

    stock = final.stock
    by_kind, _source = units_sold_by_kind(ops, state, view)
    legit_units = sum(u for k, u in by_kind.items() if k in LEGIT_KINDS)
    values["fill_rate.legit"] = Metric("fill_rate.legit", "rate", {
        "rate": legit_units / stock if stock > 0 else None, "count": legit_units},
        note=None if stock > 0 else "stock is 0")

    # only the bots' holds are charted: the legitimate kinds' are never made
    # the holds from the view's indexes, unless a time is NaN (the earliest close then depends on the order
    # the closes are compared in: taken as client_holds always took it)
    holds = (bot_holds(view, final.hold_ttl_ms) if bounds is not None
             else client_holds(calls, final.hold_ttl_ms, skip_kinds=LEGIT_KINDS))
    peak, avg = bot_hold_share(holds, stock, window)
    values["bot_hold_share.peak"] = Metric.gauge("bot_hold_share.peak", peak, "stock is 0")
    values["bot_hold_share.avg"] = Metric.gauge(
        "bot_hold_share.avg", avg, "stock is 0" if stock <= 0 else "the run has no time span")

    samples = sorted((s for s in timeline if s.error is None), key=lambda s: s.t)
    sold_out_at = next((s.t for s in samples if s.available == 0 and s.held == 0), None)
    if not samples:
        missing["sold_out_s"] = "the run has no counter timeline (timeline.jsonl)"
    elif start is None:
        missing["sold_out_s"] = "the run has no operations"
    else:
        values["sold_out_s"] = Metric.gauge(
            "sold_out_s", max(0.0, sold_out_at - start) if sold_out_at is not None else None,
            "no timeline sample shows available 0 and held 0: the sale never sold out")

    lags = [s.sync_lag_ms for s in samples if s.sync_lag_ms is not None]
    if lags:
        values["sync_lag"] = Metric.trend("sync_lag", lags)
    else:
        missing["sync_lag"] = "no timeline sample carries sync_lag_ms: no stock sync reported a lag in this run"

    if state.audit is None and (state.counters is None or state.counters.sold is None):
        # the clients' view alone cannot see a sale nobody was told of: not measured
        missing["oversold_units"] = "neither the audit nor the counters could be read"
    else:
        if totals is None:
            totals = totals_of(view)
        values["oversold_units"] = Metric.gauge("oversold_units", totals.oversold_units)
    leaked = _leaked_units(state)
    if leaked is None:
        missing["leaked_units"] = "neither the counters nor the audit could be read"
    else:
        values["leaked_units"] = Metric.gauge("leaked_units", leaked)

    values["faults"] = Metric("faults", "counter", {
        "count": len(faults), "rate": len(faults) / duration if duration > 0 else None})
    return Metrics(values=values, missing=missing)


_TIME = attrgetter("time")
_DONE_TIME = attrgetter("done_time")
_DONE = attrgetter("done")
_OUTCOME = attrgetter("outcome")
_LATENCY = attrgetter("latency_ms")
_NOT_NONE = partial(is_not, None)


def _bounds(calls: Sequence[Call]) -> tuple[float, float] | tuple[None, None] | None:
    """(first invoke, last record) of the calls' records (every record of the sale when no duplicate was
    dropped): the first invoke's time, else the first record's; the last record's. None when a time is NaN
    (then min and max depend on the order they are taken in, so the caller takes them as the records come)."""
    if not calls:
        return None, None
    firsts = list(map(_TIME, calls))
    dones = [t for t in map(_DONE_TIME, calls) if t is not None]
    every = sum(firsts) + sum(dones)
    if every != every:
        return None
    invoked = next((c.time for c in calls if c.invoke is not None), None)
    start = invoked if invoked is not None else min(firsts)
    return start, max(max(firsts), max(dones, default=firsts[0]))


def _leaked_units(state: SaleState) -> int | None:
    """Units still held at quiescence: the held counter, else the audit's listed holds."""
    if state.counters is not None and state.counters.held is not None:
        return state.counters.held
    return state.audit.held_qty if state.audit is not None else None
