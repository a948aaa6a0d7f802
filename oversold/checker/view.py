"""The sale as the invariants see it: the history's operations and the typed final state, indexed once.

Built once per check by ``SaleView.build``; every invariant reads the same
view, and its cached indexes keep the invariants linear in the history.

Usage::

    view = SaleView.build(ops, final)
    view.acked_paid            # units of acknowledged payments, one per order operation
    view.audit.sold_qty if view.audit else None
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable

from oversold.model.calls import Call, pair
from oversold.model.gcpause import gc_paused
from oversold.model.history import FinalState, Op
from oversold.model.state import Audit, Counters, Ledger, SaleSettings, SaleState, parse_state


# operations that add units to a sale's stock (an admin's warehouse changes; in_transit adds none until received)
WAREHOUSE_ADDS = ("restock", "receive")


def done_time(c: Call) -> float:
    """When an operation completed, else (no completion) when it was invoked."""
    return c.done_time if c.done_time is not None else c.time


@dataclass(frozen=True)
class SaleView:
    """Everything the invariants read, derived once from the inputs.

    ``calls`` are this sale's operations by time of their first record; ``counts``
    the pairing's bookkeeping (other sales' records, duplicates, orphans).
    """

    state: SaleState
    calls: tuple[Call, ...]
    counts: dict[str, int]
    order_call: dict[str, Call] = field(default_factory=dict)  # order id -> the ok order that placed it
    # order id -> every ok order that was answered with it (more than one request: see unique_order_ids)
    order_calls: dict[str, tuple[Call, ...]] = field(default_factory=dict)
    pays: dict[str, tuple[Call, ...]] = field(default_factory=dict)  # order id -> every pay of it

    @classmethod
    def build(cls, ops: Iterable[Op], final: FinalState) -> "SaleView":
        """Pair the history of ``final.sale_id`` and parse the final state (``BadInput`` for a wrong shape)."""
        with gc_paused():
            state = parse_state(final)
            calls, counts = pair(ops, final.sale_id)
            by_op = _group_by_op(calls)
            order_call, order_calls, pays = _index(by_op.get("order", ()), by_op.get("pay", ()))
            view = cls(state=state, calls=calls, counts=counts, order_call=order_call, order_calls=order_calls,
                       pays=pays)
            view.__dict__["_by_op"] = by_op  # what the cached property would work out again
            return view

    # -- the final state, for short -------------------------------------------------

    @cached_property
    def stock(self) -> int:
        """The sale's stock at the end: the initial stock plus the units restocked and received
        (``restock`` / ``receive`` operations of an admin in the history). Of those whose outcome is
        unknown (``info``), what the final counters' stock shows, as long as it lies between the
        acknowledged and the acknowledged plus every unknown one (no backend may add more than it
        was asked to)."""
        added = unknown = 0
        for c in (c for op in WAREHOUSE_ADDS for c in self.calls_of(op)):
            if c.outcome == "ok":
                added += c.qty
            elif c.outcome == "info":
                unknown += c.qty
        known = self.state.stock + added
        shown = self.counters.stock if self.counters is not None else None
        if unknown and shown is not None and known <= shown <= known + unknown:
            return shown
        return known

    @property
    def audit(self) -> Audit | None:
        return self.state.audit

    @property
    def counters(self) -> Counters | None:
        return self.state.counters

    @property
    def ledger(self) -> Ledger | None:
        return self.state.ledger

    @property
    def settings(self) -> SaleSettings:
        return self.state.settings

    # -- the history, indexed ---------------------------------------------------------

    def calls_of(self, op: str) -> tuple[Call, ...]:
        """This sale's calls of one operation (``order``, ``pay``, ``cancel``, ...), in call order."""
        return self._by_op.get(op, ())

    @cached_property
    def _by_op(self) -> dict[str, tuple[Call, ...]]:
        return _group_by_op(self.calls)

    def ok_pays(self, order_id: str) -> tuple[Call, ...]:
        return tuple(c for c in self.pays.get(order_id, ()) if c.outcome == "ok")

    # cached_property writes straight into __dict__, so it works on a frozen dataclass;
    # the caches keep the invariants linear in the size of the history.
    @cached_property
    def acked_orders(self) -> tuple[str, ...]:
        """Order ids with at least one ``ok`` pay, in the order they were first acknowledged."""
        firsts = []
        for oid, cs in self.pays.items():
            if len(cs) == 1:  # the usual case, without the generic walk
                c = cs[0]
                if c.outcome == "ok":
                    firsts.append((c.done_time if c.done_time is not None else c.time, oid))
                continue
            oks = [c for c in cs if c.outcome == "ok"]
            if oks:
                firsts.append((min(done_time(c) for c in oks), oid))
        firsts.sort()
        return tuple(oid for _, oid in firsts)

    def pay_owner(self, pay: Call) -> Call | None:
        """The ok order operation a pay belongs to: of the ok orders answered with its order id, the
        latest one completed before the pay was invoked, the payer's own preferred; None if none.

        An order id may name two orders when a backend reused it (a failover that rolled its id
        counter back): keyed by id alone, the second buyer's acknowledged payment would vanish
        into the first's.
        """
        cands = self.order_calls.get(pay.order_id or "", ())
        if len(cands) < 2:
            return cands[0] if cands else None
        before = [c for c in cands if done_time(c) <= pay.time] or list(cands)
        own = [c for c in before if c.user_id == pay.user_id] or before
        return max(own, key=lambda c: (done_time(c), c.op_id))

    @cached_property
    def acked_payments(self) -> tuple[tuple[str, Call | None, Call], ...]:
        """One (order id, order operation, first ok pay) per distinct order operation with an ``ok`` pay,
        in the order they were first acknowledged: acknowledged payments keyed by (order op, order id)."""
        firsts: dict[tuple[str, str | None], Call] = {}
        owner: dict[tuple[str, str | None], Call | None] = {}
        order_calls = self.order_calls
        for oid, cs in self.pays.items():
            if len(cs) == 1:  # the usual case, inlined: one pay of an id, its key met for the first time
                c = cs[0]
                if c.outcome == "ok":
                    cands = order_calls.get(oid, ())
                    if len(cands) < 2:
                        oc = cands[0] if cands else None
                        k = (oid, oc.op_id if oc is not None else None)
                        firsts[k] = c
                        owner[k] = oc
                        continue
                else:
                    continue
            for c in cs:
                if c.outcome != "ok":
                    continue
                cands = order_calls.get(oid, ())  # pay_owner's usual case inlined: at most one order with this id
                oc = self.pay_owner(c) if len(cands) > 1 else cands[0] if cands else None
                k = (oid, oc.op_id if oc else None)
                prev = firsts.get(k)
                if prev is None or done_time(c) < done_time(prev):
                    firsts[k] = c
                    owner[k] = oc
        # sorted by (first ok time, order id, order op id); the index keeps equal keys in insertion order
        ordered = sorted((c.done_time if c.done_time is not None else c.time, k[0], k[1] or "", i, k)
                         for i, (k, c) in enumerate(firsts.items()))
        return tuple((k[0], owner[k], firsts[k]) for *_, k in ordered)

    def acked_qty(self, oid: str, oc: Call | None) -> int:
        return oc.qty if oc is not None else self.qty_of(oid)

    @cached_property
    def audited_qty(self) -> dict[str, int]:
        return {e.order_id: e.qty for e in self.audit.sold} if self.audit else {}

    @cached_property
    def acked_paid(self) -> int:
        """Units of acknowledged payments, one per distinct order operation (not per order id)."""
        # (acked_qty, inlined)
        return sum(oc.qty if oc is not None else self.qty_of(oid) for oid, oc, _ in self.acked_payments)

    @cached_property
    def acked_refunded(self) -> int:
        """Units of acknowledged paid orders that the audit lists as refunded.

        A refund names an order id, so it excuses one acknowledged payment of that id (the first):
        a reused id's second payment is never written off by the first one's refund.
        """
        refunded = self.audit.refunded_ids if self.audit else frozenset()
        if not refunded:
            return 0
        seen: set[str] = set()
        total = 0
        for oid, oc, _ in self.acked_payments:
            if oid in refunded and oid not in seen:
                seen.add(oid)
                total += self.acked_qty(oid, oc)
        return total

    def qty_of(self, order_id: str) -> int:
        """Quantity of an order: as placed, else as audited, else as the pay said."""
        if order_id in self.order_call:
            return self.order_call[order_id].qty
        if order_id in self.audited_qty:
            return self.audited_qty[order_id]
        pays = self.pays.get(order_id, ())
        return pays[0].qty if pays else 0

    def user_of(self, order_id: str) -> str | None:
        if order_id in self.order_call:
            return self.order_call[order_id].user_id
        pays = self.pays.get(order_id, ())
        return pays[0].user_id if pays else None

    # -- for counterexamples ------------------------------------------------------------

    def pay_ids(self, order_id: str) -> list[str]:
        return [c.op_id for c in self.pays.get(order_id, ())]

    def order_ref(self, order_id: str) -> dict[str, Any]:
        """What the history knows of an order, for a counterexample."""
        oc = self.order_call.get(order_id)
        return {"order_op_id": oc.op_id if oc else None, "pay_op_ids": self.pay_ids(order_id)}


def _group_by_op(calls: tuple[Call, ...]) -> dict[str, tuple[Call, ...]]:
    """operation -> the calls of it, in call order."""
    # orders and pays are nearly every call: taken by comprehensions (C-speed loops); the rest grouped
    by_op: dict[str, list[Call]] = {"order": [c for c in calls if c.op == "order"],
                                    "pay": [c for c in calls if c.op == "pay"]}
    for c in [c for c in calls if c.op != "order" and c.op != "pay"]:
        if isinstance(c.op, str):  # (an odd value the checking reader let through is no operation anybody asks for)
            by_op.setdefault(c.op, []).append(c)
    return {op: tuple(cs) for op, cs in by_op.items()}


def _index(orders: tuple[Call, ...], pays: tuple[Call, ...]) -> tuple[dict[str, Call], dict[str, tuple[Call, ...]],
                                                                    dict[str, tuple[Call, ...]]]:
    """order id -> its first ok order, -> every ok order answered with it, -> every pay of it (each in call order),
    from the sale's order and pay calls."""
    order_calls = _by_order_id([c for c in orders if c.outcome == "ok"])
    return {oid: cs[0] for oid, cs in order_calls.items()}, order_calls, _by_order_id(pays)


def _by_order_id(calls: list[Call] | tuple[Call, ...]) -> dict[str, tuple[Call, ...]]:
    """order id -> the calls naming it, in call order (calls without one left out)."""
    # Almost every id has one call: kept as itself, made a 1-tuple at the end; the rare id with more grows
    # in a list (never tuple + tuple, which is quadratic when a broken backend hands one id to everyone).
    first: dict[str, Call] = {}
    claim = first.setdefault
    more: dict[str, list[Call]] = {}
    for c in calls:
        oid = c.order_id
        if not oid:
            continue
        prev = claim(oid, c)
        if prev is not c:
            grown = more.get(oid)
            if grown is None:
                more[oid] = [prev, c]
            else:
                grown.append(c)
    index = {oid: (c,) for oid, c in first.items()}
    for oid, cs in more.items():
        index[oid] = tuple(cs)
    return index
