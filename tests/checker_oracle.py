"""The checker's and the metrics' shared pieces as they were before they were made fast (issue 15), kept as an oracle.

``tests/unit/test_checker_oracle.py`` checks that the fast pairing, view and hot loops
give the same verdicts, counterexamples and metrics as these plain versions on random
histories. Plain on purpose: a sort of every record with ``repr`` breaking exact ties,
one list per order id, a fresh tuple per lookup. Do not speed this file up.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from functools import cached_property
from typing import Any, ClassVar, Iterable

from oversold.analysis.metrics import Metric, Metrics, bot_hold_share, client_holds
from oversold.checker import INVARIANTS, SaleView, Verdict, check_view
from oversold.checker.invariant import CheckOptions, result
from oversold.checker.payments import SinglePayment, reply
from oversold.checker.result import InvariantResult
from oversold.checker.view import done_time
from oversold.model.calls import Call
from oversold.model.history import FinalState, Op
from oversold.model.metric_spec import LATENCY_OPS, LEGIT_KINDS
from oversold.model.state import parse_state

_TYPE_RANK = {"invoke": 0, "ok": 1, "fail": 1, "info": 1}


def old_pair(ops: Iterable[Op], sale_id: str | None = None) -> tuple[tuple[Call, ...], dict[str, int]]:
    records = sorted(ops, key=lambda o: (o.time, _TYPE_RANK.get(o.type, 2), o.op_id, repr(o)))
    invokes: dict[str, Op] = {}
    dones: dict[str, Op] = {}
    counts = Counter(records=len(records), other_sale_records=0, duplicate_records=0)
    for op in records:
        if sale_id is not None and op.sale_id != sale_id:
            counts["other_sale_records"] += 1
            continue
        side = invokes if op.type == "invoke" else dones
        if op.op_id in side:
            counts["duplicate_records"] += 1
            continue
        side[op.op_id] = op
    ids = sorted(set(invokes) | set(dones), key=lambda i: ((invokes.get(i) or dones[i]).time, i))
    calls = tuple(Call.of(invokes.get(i), dones.get(i)) for i in ids)
    counts["unmatched_completions"] = sum(1 for c in calls if c.invoke is None)
    counts["unfinished_ops"] = sum(1 for c in calls if c.done is None)
    return calls, dict(counts)


class OldView(SaleView):
    """``SaleView`` built and indexed the old way."""

    @classmethod
    def build(cls, ops: Iterable[Op], final: FinalState) -> "OldView":
        state = parse_state(final)
        calls, counts = old_pair(ops, final.sale_id)
        order_call: dict[str, Call] = {}
        order_calls: dict[str, list[Call]] = defaultdict(list)
        pays: dict[str, list[Call]] = defaultdict(list)
        for c in calls:
            oid = c.order_id
            if c.op == "order" and c.outcome == "ok" and oid:
                order_calls[oid].append(c)
                order_call.setdefault(oid, c)
            elif c.op == "pay" and oid:
                pays[oid].append(c)
        return cls(state=state, calls=calls, counts=counts, order_call=order_call,
                   order_calls={k: tuple(v) for k, v in order_calls.items()},
                   pays={k: tuple(v) for k, v in pays.items()})

    @cached_property
    def acked_orders(self) -> tuple[str, ...]:
        firsts = []
        for oid in self.pays:
            oks = self.ok_pays(oid)
            if oks:
                firsts.append((min(done_time(c) for c in oks), oid))
        return tuple(oid for _, oid in sorted(firsts))

    def pay_owner(self, pay: Call) -> Call | None:
        cands = self.order_calls.get(pay.order_id or "", ())
        if not cands:
            return None
        before = [c for c in cands if done_time(c) <= pay.time] or list(cands)
        own = [c for c in before if c.user_id == pay.user_id] or before
        return max(own, key=lambda c: (done_time(c), c.op_id))

    @cached_property
    def acked_payments(self) -> tuple[tuple[str, Call | None, Call], ...]:
        firsts: dict[tuple[str, str | None], Call] = {}
        owner: dict[tuple[str, str | None], Call | None] = {}
        for oid in self.pays:
            for c in self.ok_pays(oid):
                oc = self.pay_owner(c)
                k = (oid, oc.op_id if oc else None)
                if k not in firsts or done_time(c) < done_time(firsts[k]):
                    firsts[k] = c
                    owner[k] = oc
        ordered = sorted(firsts, key=lambda k: (done_time(firsts[k]), k[0], k[1] or ""))
        return tuple((k[0], owner[k], firsts[k]) for k in ordered)


class OldSinglePayment(SinglePayment):
    """``single_payment`` with its loops as they were (and its rule as issue 13 sharpened it: every answered reply
    under one key, not only the successes)."""

    name: ClassVar[str] = "single_payment"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name = self.name
        examples: list[dict[str, Any]] = []
        problems: list[str] = []
        disagree = 0
        for oid in sorted(s.pays):
            oks = s.ok_pays(oid)
            if len({(c.done.qty if c.done else c.qty) for c in oks}) > 1:
                disagree += 1
                examples.append({"order_id": oid, "user_ids": sorted({c.user_id for c in oks}),
                                 "op_ids": [c.op_id for c in oks], "times": [done_time(c) for c in oks],
                                 "qtys": [c.done.qty if c.done else c.qty for c in oks]})
        if disagree:
            problems.append(f"{disagree} orders have ok pays that disagree on quantity")
        by_key: dict[tuple[str, str], list[Call]] = defaultdict(list)
        for c in s.calls:
            if c.key is not None and c.done is not None and c.done.status and c.outcome != "info":
                by_key[(c.op, c.key)].append(c)
        split = 0
        for (op, key), cs in sorted(by_key.items()):
            if len({reply(c) for c in cs}) > 1:
                split += 1
                examples.append({"op": op, "key": key, "replies": [list(reply(c)) for c in cs],
                                 "order_ids": [c.order_id for c in cs], "user_ids": [c.user_id for c in cs],
                                 "op_ids": [c.op_id for c in cs], "times": [done_time(c) for c in cs]})
        if split:
            problems.append(f"{split} idempotency keys were answered two different ways")
        if s.audit is not None:
            twice = sorted((oid, n) for oid, n in Counter(e.order_id for e in s.audit.sold).items() if n > 1)
            for oid, n in twice:
                examples.append({"order_id": oid, "audit_entries": n, **s.order_ref(oid)})
            if twice:
                problems.append(f"the audit lists {len(twice)} orders more than once")
        if problems:
            return result(name, "fail", "Payments were applied more than once: " + "; ".join(problems) + ".", examples)
        paid = len(s.acked_orders)
        if s.audit is None:
            return result(name, "unknown", f"The history shows one outcome per order and key for {paid} paid orders, "
                                            f"but the audit is missing so double sales cannot be ruled out.")
        return result(name, "pass", f"{paid} acknowledged paid orders, {len(by_key)} idempotency keys answered, "
                                     f"each the same way every time, and no order sold twice.")


OLD_INVARIANTS = tuple(OldSinglePayment() if inv.name == "single_payment" else inv for inv in INVARIANTS)


def old_check(ops: list[Op], final: FinalState, *, grace_ms: int = 2000, expect_sell_out: bool = True) -> Verdict:
    return check_view(OldView.build(ops, final), grace_ms=grace_ms, expect_sell_out=expect_sell_out,
                      invariants=OLD_INVARIANTS)


def old_units_sold_by_kind(ops: list[Op], state: Any) -> dict[str, int]:
    kinds = {op.user_id: op.kind for op in reversed(ops)}
    by_kind: dict[str, int] = defaultdict(int)
    if state.audit is not None:
        for entry in state.audit.sold:
            by_kind[kinds.get(entry.user_id, "unknown")] += entry.qty
        return dict(sorted(by_kind.items()))
    calls, _ = old_pair(ops, state.sale_id)
    ordered_qty = {c.order_id: c.first.qty for c in calls if c.first.op == "order" and c.outcome == "ok" and c.order_id}
    paid: dict[str, Call] = {}
    for c in calls:
        if c.first.op == "pay" and c.outcome == "ok" and c.order_id and c.order_id not in paid:
            paid[c.order_id] = c
    for oid, c in paid.items():
        by_kind[c.first.kind] += ordered_qty.get(oid, c.first.qty)
    return dict(sorted(by_kind.items()))


def old_metrics(ops: list[Op], final: FinalState, totals: Any) -> Metrics:
    """The metrics of a run without a timeline or faults, as they were made before the view fed them:
    from the sale's records, one loop a metric, the bots' holds from every call."""
    state = parse_state(final)
    ops = [o for o in ops if o.sale_id == final.sale_id]
    calls, _ = old_pair(ops)
    values: dict[str, Metric] = {}
    missing: dict[str, str] = {}
    start = min((o.time for o in ops if o.type == "invoke"), default=None)
    if start is None and ops:
        start = min(o.time for o in ops)
    end = max((o.time for o in ops), default=None)
    duration = (end - start) if start is not None and end is not None else 0.0
    window = (start, end) if start is not None and end is not None and end > start else None
    latencies: dict[str, list[float]] = {op: [] for op in LATENCY_OPS}
    completions = unknown = 0
    for c in calls:
        if c.done is None:
            unknown += 1
            continue
        completions += 1
        if c.outcome == "info":
            unknown += 1
        if c.done.latency_ms is not None and c.op in latencies:
            latencies[c.op].append(c.done.latency_ms)
    for op in LATENCY_OPS:
        values[f"latency.{op}"] = Metric.trend(f"latency.{op}", latencies[op], f"no {op} request completed in this run")
    values["requests"] = Metric("requests", "counter", {
        "count": len(calls), "rate": len(calls) / duration if duration > 0 else None})
    values["throughput"] = Metric.gauge("throughput", completions / duration if duration > 0 else None)
    values["errors"] = Metric("errors", "rate", {"rate": unknown / len(calls) if calls else None, "count": unknown})
    stock = final.stock
    legit_units = sum(u for k, u in old_units_sold_by_kind(ops, state).items() if k in LEGIT_KINDS)
    values["fill_rate.legit"] = Metric("fill_rate.legit", "rate", {
        "rate": legit_units / stock if stock > 0 else None, "count": legit_units})
    peak, avg = bot_hold_share(client_holds(calls, final.hold_ttl_ms, skip_kinds=LEGIT_KINDS), stock, window)
    values["bot_hold_share.peak"] = Metric.gauge("bot_hold_share.peak", peak)
    values["bot_hold_share.avg"] = Metric.gauge("bot_hold_share.avg", avg)
    missing["sold_out_s"] = "the run has no counter timeline (timeline.jsonl)"
    missing["sync_lag"] = "no timeline sample carries sync_lag_ms: no stock sync reported a lag in this run"
    if state.audit is None and (state.counters is None or state.counters.sold is None):
        missing["oversold_units"] = "neither the audit nor the counters could be read"
    else:
        values["oversold_units"] = Metric.gauge("oversold_units", totals.oversold_units)
    leaked = (state.counters.held if state.counters is not None and state.counters.held is not None
              else state.audit.held_qty if state.audit is not None else None)
    if leaked is None:
        missing["leaked_units"] = "neither the counters nor the audit could be read"
    else:
        values["leaked_units"] = Metric.gauge("leaked_units", leaked)
    values["faults"] = Metric("faults", "counter", {"count": 0, "rate": 0 / duration if duration > 0 else None})
    return Metrics(values=values, missing=missing)
