"""Soft metrics: exact numbers from small hand-made histories and timelines."""

from __future__ import annotations

import dataclasses

import pytest
from paths import REPO

from oversold.analysis.metrics import (
    LEGIT_KINDS,
    METRICS,
    Metric,
    compute_metrics,
    quantile,
    units_sold_by_kind,
)
from oversold.checker import check
from oversold.model.history import FinalState, Op
from oversold.model.state import parse_state
from oversold.model.timeline import parse_faults, parse_timeline

SALE = "s1"


def call(op_id: str, user: str, kind: str, op: str, t: float, done_t: float | None, outcome: str = "ok",
         *, order_id: str | None = None, qty: int = 1, latency_ms: float | None = None,
         code: str | None = None, sale_id: str = SALE) -> list[Op]:
    """An invoke and (unless ``done_t`` is None) its completion."""
    out = [Op("invoke", op_id, t, user, user, kind, op, sale_id, qty, order_id=order_id if op != "order" else None)]
    if done_t is not None:
        lat = latency_ms if latency_ms is not None else round((done_t - t) * 1000, 6)
        out.append(Op(outcome, op_id, done_t, user, user, kind, op, sale_id, qty, order_id=order_id,
                      code=code, latency_ms=lat))
    return out


def final(stock: int = 10, *, ttl_ms: int = 1000, sold: list[dict] | None = None, counters: dict | None = None,
          audit: bool = True) -> FinalState:
    audit_doc = {"now_ms": 0, "sold": sold or [], "holds": []} if audit else None
    return FinalState(SALE, stock, ttl_ms, counters=counters, audit=audit_doc)


def test_quantile_interpolates_linearly_between_ranks():
    assert quantile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert quantile([10.0, 20.0, 30.0], 50) == 20.0
    assert quantile([10.0, 20.0, 30.0], 100) == 30.0
    assert quantile([10.0, 20.0, 30.0], 0) == 10.0
    assert quantile([7.0], 99) == 7.0
    assert quantile([], 50) is None


def test_latency_trend_per_operation_with_exact_quantiles():
    ops = []
    for i, lat in enumerate([40.0, 10.0, 30.0, 20.0]):
        ops += call(f"o{i}", f"u{i}", "buyer", "order", 1.0 + i, 1.5 + i, "ok", order_id=f"x{i}", latency_ms=lat)
    ops += call("p1", "u0", "buyer", "pay", 6.0, 6.1, "ok", order_id="x0", latency_ms=5.0)
    m = compute_metrics(ops, final())
    order = m.get("latency.order")
    assert order is not None
    assert order.to_dict() == {"p(50)": 25.0, "p(90)": 37.0, "p(95)": 38.5, "p(99)": 39.7,
                               "avg": 25.0, "min": 10.0, "max": 40.0, "count": 4}
    assert m.stat("latency.order", "med") == 25.0
    assert m.stat("latency.order", "p(75)") == pytest.approx(32.5)
    assert m.stat("latency.pay", "max") == 5.0
    # no cancel completed: the trend exists with count 0 and no quantiles, and says why
    cancel = m.get("latency.cancel")
    assert cancel is not None and cancel.stat("count") == 0 and cancel.stat("p(99)") is None
    assert "no cancel request completed" in (cancel.note or "")


def test_throughput_requests_and_errors_count_unknown_outcomes_only():
    ops = []
    ops += call("a", "u1", "buyer", "order", 0.0, 0.5, "ok", order_id="x1")
    ops += call("b", "u2", "buyer", "order", 1.0, 1.5, "fail", code="sold_out")   # a refusal, not an error
    ops += call("c", "u3", "buyer", "order", 2.0, 2.5, "fail", code="hold_expired")
    ops += call("d", "u4", "buyer", "pay", 3.0, 8.0, "info", order_id="x1")       # timed out: an error
    ops += call("e", "u5", "buyer", "order", 9.0, None)                             # never completed: an error
    ops += call("f", "u6", "buyer", "order", 9.5, 10.0, "ok", order_id="x2")
    m = compute_metrics(ops, final())
    # window 0..10 s; 6 operations, 5 completions; 2 unknown outcomes
    assert m.values["requests"].to_dict() == {"count": 6, "rate": 0.6}
    assert m.stat("throughput", "value") == 0.5
    assert m.stat("errors", "rate") == pytest.approx(2 / 6)
    assert m.stat("errors", "count") == 2


def test_other_sales_records_are_ignored():
    ops = call("a", "u1", "buyer", "order", 0.0, 1.0, "info", order_id="x1")
    ops += call("b", "u1", "buyer", "order", 0.0, 1.0, "ok", order_id="y1", sale_id="other")
    m = compute_metrics(ops, final())
    assert m.stat("requests", "count") == 1
    assert m.stat("errors", "rate") == 1.0


def test_fill_rate_counts_legit_kinds_from_the_audit_by_user_kind():
    ops = []
    for user, kind in [("b1", "buyer"), ("lp1", "late_payer"), ("h1", "hoarder"), ("s1", "scalper")]:
        ops += call(f"{user}-1", user, kind, "order", 1.0, 1.1, "ok", order_id=f"o-{user}")
    sold = [{"order_id": "o-b1", "user_id": "b1", "qty": 3, "paid_ms": 1},
            {"order_id": "o-lp1", "user_id": "lp1", "qty": 2, "paid_ms": 2},
            {"order_id": "o-h1", "user_id": "h1", "qty": 1, "paid_ms": 3},
            {"order_id": "o-s1", "user_id": "s1", "qty": 2, "paid_ms": 3},
            {"order_id": "o-ghost", "user_id": "ghost", "qty": 1, "paid_ms": 4}]
    f = final(stock=10, sold=sold)
    by_kind, source = units_sold_by_kind(ops, parse_state(f))
    assert source == "audit"
    assert by_kind == {"buyer": 3, "hoarder": 1, "late_payer": 2, "scalper": 2, "unknown": 1}
    m = compute_metrics(ops, f)
    assert m.values["fill_rate.legit"].to_dict() == {"rate": 0.5, "count": 5}
    assert {"hoarder", "scalper"}.isdisjoint(LEGIT_KINDS) and "buyer" in LEGIT_KINDS


def test_fill_rate_falls_back_to_ok_pays_without_an_audit():
    ops = []
    ops += call("b1-1", "b1", "buyer", "order", 1.0, 1.1, "ok", order_id="o1", qty=2)
    ops += call("b1-2", "b1", "buyer", "pay", 1.2, 1.3, "ok", order_id="o1", qty=2)
    ops += call("b1-3", "b1", "buyer", "pay", 1.4, 1.5, "ok", order_id="o1", qty=2)   # a repeat: counted once
    ops += call("b2-1", "b2", "buyer", "order", 1.0, 1.1, "ok", order_id="o2")
    ops += call("b2-2", "b2", "buyer", "pay", 1.2, 1.3, "info", order_id="o2")        # unknown: not counted
    ops += call("s1-1", "s1", "scalper", "order", 1.0, 1.1, "ok", order_id="o3")
    ops += call("s1-2", "s1", "scalper", "pay", 1.2, 1.3, "ok", order_id="o3")
    f = final(stock=4, audit=False)
    assert units_sold_by_kind(ops, parse_state(f)) == ({"buyer": 2, "scalper": 1}, "history")
    assert compute_metrics(ops, f).stat("fill_rate.legit", "rate") == 0.5


def test_bot_hold_share_peak_and_time_weighted_average():
    ops = []
    ops += call("b-1", "b", "buyer", "order", 0.0, 0.1, "ok", order_id="ob", qty=4)       # legit: not counted
    ops += call("h1-1", "h1", "hoarder", "order", 0.9, 1.0, "ok", order_id="oh1", qty=2)  # live 1.0 .. 2.0 (TTL)
    ops += call("h2-1", "h2", "hoarder", "order", 1.4, 1.5, "ok", order_id="oh2", qty=3)  # live 1.5 .. 1.8
    ops += call("h2-2", "h2", "hoarder", "cancel", 1.7, 1.8, "ok", order_id="oh2", qty=3)
    ops += call("s-1", "s", "scalper", "order", 2.9, 3.0, "ok", order_id="os", qty=1)     # live 3.0 .. 4.0
    ops += call("s-2", "s", "scalper", "pay", 3.05, 3.1, "info", order_id="os")          # unknown: still held
    ops += call("b-2", "b", "buyer", "pay", 3.5, 4.0, "ok", order_id="ob", qty=4)
    m = compute_metrics(ops, final(stock=10, ttl_ms=1000))
    assert m.stat("bot_hold_share.peak", "value") == 0.5   # 2 + 3 units of 10, between 1.5 and 1.8
    # held unit-seconds: 2*1.0 + 3*0.3 + 1*1.0 = 3.9 over a 4 s window of 10 units
    assert m.stat("bot_hold_share.avg", "value") == pytest.approx(3.9 / 40)


def test_sold_out_seconds_from_first_invoke_to_first_empty_sample():
    ops = call("a", "u", "buyer", "order", 100.0, 100.2, "ok", order_id="x")
    timeline = [{"t": 99.0, "available": 3, "held": 0},
                {"t": 101.0, "available": 0, "held": 2},
                {"t": 101.5, "error": "HTTP 503"},
                {"t": 102.25, "available": 0, "held": 0},
                {"t": 103.0, "available": 0, "held": 0}]
    assert compute_metrics(ops, final(), timeline=parse_timeline(timeline)).stat("sold_out_s", "value") == 2.25
    never = [{"t": 101.0, "available": 1, "held": 0}]
    m = compute_metrics(ops, final(), timeline=parse_timeline(never))
    assert m.stat("sold_out_s", "value") is None and "never sold out" in (m.values["sold_out_s"].note or "")
    assert "sold_out_s" in compute_metrics(ops, final()).missing   # no timeline at all


def test_sync_lag_from_samples_or_missing_with_a_reason():
    ops = call("a", "u", "buyer", "order", 1.0, 1.1, "ok", order_id="x")
    timeline = [{"t": 1.0, "available": 1, "held": 0, "sync_lag_ms": v} for v in (100, 300, 200)]
    m = compute_metrics(ops, final(), timeline=parse_timeline(timeline))
    assert m.stat("sync_lag", "max") == 300 and m.stat("sync_lag", "avg") == 200
    assert m.stat("sync_lag", "p(99)") == pytest.approx(298.0)
    absent = compute_metrics(ops, final(), timeline=parse_timeline([{"t": 1.0, "available": 1, "held": 0}]))
    assert absent.get("sync_lag") is None
    assert "sync_lag_ms" in absent.missing["sync_lag"]


def test_oversold_and_leaked_units():
    sold = [{"order_id": f"o{i}", "user_id": "b", "qty": 4, "paid_ms": i} for i in range(3)]
    f = final(stock=10, sold=sold, counters={"available": 0, "held": 2, "sold": 12})
    m = compute_metrics([], f)
    assert m.stat("oversold_units", "value") == 2          # 12 audited of 10
    assert m.stat("leaked_units", "value") == 2            # the counters' held at quiescence
    # the metric is the checker's own number: the threshold and the verdict never disagree
    assert check([], f).totals.oversold_units == 2
    told = dataclasses.replace(check([], f).totals, oversold_units=5)
    assert compute_metrics([], f, totals=told).stat("oversold_units", "value") == 5
    blind = FinalState(SALE, 10, 1000, counters=None, audit=None)
    m = compute_metrics([], blind)
    assert {"oversold_units", "leaked_units"} <= set(m.missing)


def test_faults_are_counted_and_to_dict_lists_only_measured_metrics():
    ops = call("a", "u", "buyer", "order", 0.0, 2.0, "ok", order_id="x")
    m = compute_metrics(ops, final(), faults=parse_faults([{"start": 0.5, "end": 1.0, "action": "kill"},
                                                           {"start": 1.5, "end": None, "action": "pause"}]))
    assert m.values["faults"].to_dict() == {"count": 2, "rate": 1.0}
    d = m.to_dict()
    assert "sync_lag" not in d and set(d) <= set(METRICS)
    assert d["latency.order"]["p(99)"] == 2000.0


def test_metric_stat_rejects_a_statistic_the_kind_lacks():
    with pytest.raises(KeyError):
        Metric.gauge("throughput", 1.0).stat("p(99)")


def test_the_docs_list_every_metric_with_its_kind_and_unit():
    """docs/ci.md's threshold table is what users read: it must name each metric a threshold can use."""
    import re

    text = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    rows = dict((m.group(1), (m.group(2), m.group(3)))
                for m in re.finditer(r"^\| `([a-z_.]+)` \| (\w+) \| ([^|]+?) \|", text, re.MULTILINE))
    assert rows == {m.name: (m.kind, m.unit) for m in METRICS.values()}
