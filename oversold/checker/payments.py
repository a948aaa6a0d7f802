"""Payments: one per order and per idempotency key, unique order ids, and every captured payment made good."""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from oversold.model.calls import Call
from oversold.model.evidence import Evidence

from .invariant import CheckOptions, result
from .oversell import beyond_stock_audit
from .result import InvariantResult
from .view import SaleView, done_time


def reply(c: Call) -> tuple[Any, ...]:
    """What a backend answered one request, as far as the history keeps it: status, error code, order, quantity."""
    d = c.done
    assert d is not None
    return (d.status, d.code, c.order_id if c.outcome == "ok" else None, d.qty)


class SinglePayment:
    """At most one payment per order; one reply per idempotency key; no order sold twice.

    Repeat ``ok`` pays of one order are fine (paying a paid order is
    idempotent) as long as they agree on the quantity. Every reply under one
    idempotency key and operation must be the same (status, error code, order,
    quantity), successes and refusals alike: a retry gets the stored first
    answer, so a 200 and then a 409 under one key means the first outcome was
    lost (the retry ran the operation again, into another state). Replies that
    never came from the backend are left out: ``info`` (timeouts, 503) and
    refused connections (no status). Without an audit the history can still
    fail it, but not pass it.
    """

    name: ClassVar[str] = "single_payment"
    needs: ClassVar[Evidence] = "per_user_audit"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name = self.name
        examples: list[dict[str, Any]] = []
        problems: list[str] = []
        disagree = 0
        # an order with one pay cannot disagree with itself: only the rest are looked at, in id order
        for oid in sorted(oid for oid, cs in s.pays.items() if len(cs) > 1):
            oks = s.ok_pays(oid)
            if len({(c.done.qty if c.done else c.qty) for c in oks}) > 1:
                disagree += 1
                examples.append({"order_id": oid, "user_ids": sorted({c.user_id for c in oks}),
                                 "op_ids": [c.op_id for c in oks], "times": [done_time(c) for c in oks],
                                 "qtys": [c.done.qty if c.done else c.qty for c in oks]})
        if disagree:
            problems.append(f"{disagree} orders have ok pays that disagree on quantity")
        # (op, key) -> its first answered call; a list only for the keys that have more than one. Keyed by
        # the key alone while one operation uses it (every key, in practice): no tuple a call.
        first_of_key: dict[str, Call] = {}
        first_of_other: dict[tuple[str, str], Call] = {}  # a key another operation used first
        by_key: dict[tuple[str, str], list[Call]] = {}
        claim = first_of_key.setdefault
        for c in s.calls:
            key = c.key
            if key is None or c.outcome == "info":
                continue
            d = c.done
            if d is None or not d.status:
                continue
            first = claim(key, c)
            if first is c:
                continue
            k = (c.op, key)
            if first.op != c.op:
                first = first_of_other.setdefault(k, c)
                if first is c:
                    continue
            if k in by_key:
                by_key[k].append(c)
            else:
                by_key[k] = [first, c]
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
        keys = len(first_of_key) + len(first_of_other)
        return result(name, "pass", f"{paid} acknowledged paid orders, {keys} idempotency keys answered, "
                                     f"each the same way every time, and no order sold twice.")


class UniqueOrderIds:
    """No order id is handed out twice: ``ok`` orders of different requests never share one.

    Two ok order completions with the same ``order_id`` are one request only when
    they carry the same idempotency key and user (a retry gets the stored
    answer back). Anything else is a reused id: every id-keyed record (a sold
    set, a ledger idempotent per order id, a pay by id) then merges two orders,
    and an acknowledged payment can vanish into the other's. A Redis failover
    that rolls an id counter back does exactly this.
    """

    name: ClassVar[str] = "unique_order_ids"
    needs: ClassVar[Evidence] = "none"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name = self.name
        examples: list[dict[str, Any]] = []
        # an id answered once is one request: only the ids answered more than once are looked at, in id order
        for oid in sorted(oid for oid, cs in s.order_calls.items() if len(cs) > 1):
            cs = s.order_calls[oid]
            # one request = one (user, key); without a key each operation is its own request
            requests = {(c.user_id, c.key) if c.key is not None else ("", c.op_id) for c in cs}
            if len(requests) > 1:
                examples.append({"order_id": oid, "order_op_ids": [c.op_id for c in cs],
                                 "user_ids": [c.user_id for c in cs], "keys": [c.key for c in cs],
                                 "times": [done_time(c) for c in cs],
                                 "pay_op_ids": s.pay_ids(oid)})
        if examples:
            ops = sum(len(e["order_op_ids"]) for e in examples)
            return result(name, "fail",
                           f"{len(examples)} order ids were returned by ok orders of different requests "
                           f"({ops} order operations): the backend reused order ids.", examples)
        return result(name, "pass", f"{len(s.order_calls)} order ids, each returned by ok orders of one request.")


class RefundsCompensated:
    """Every captured payment shipped or was refunded and compensated; nothing shipped past stock unrefunded.

    Reads the audit's ``payments`` (captured money), ``refunds`` and
    ``compensations`` lists, keyed by order id. Three parts: (1) every captured
    payment is in the sold set or refunded; (2) every refund has a compensation;
    (3) the sold orders past the stock line (latest paid first, refunded ones
    left out) are none, i.e. every oversold unit was refunded and compensated.

    Without an audit: unknown. An audit without those lists (a backend with no
    payment ledger): unknown if it sold past stock or the sale is
    ``payment_deduct`` (its payments cannot be reconciled), else a pass that
    says it was not checked.
    """

    name: ClassVar[str] = "refunds_compensated"
    needs: ClassVar[Evidence] = "per_order_audit"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name = self.name
        if s.audit is None:
            return result(name, "unknown", "The audit is missing, so payments, refunds and compensations cannot be "
                                            "reconciled.")
        a, stock = s.audit, s.stock
        if a.payments is None or a.refunds is None or a.compensations is None:
            missing = " / ".join(n for n, v in (("payments", a.payments), ("refunds", a.refunds),
                                                ("compensations", a.compensations)) if v is None)
            if a.sold_qty > stock:
                return result(name, "unknown", f"The audit lists {a.sold_qty} units sold of stock {stock} but has no "
                                                f"{missing} list, so it cannot show the excess was refunded and "
                                                f"compensated.")
            if s.settings.strategy == "payment_deduct":
                return result(name, "unknown", f"The sale captures payments (payment_deduct) but the audit has no "
                                                f"{missing} list to reconcile them.")
            return result(name, "pass", f"Not checked: the audit has no {missing} list, and {a.sold_qty} units sold "
                                         f"is within stock {stock}.")
        sold_ids = {e.order_id for e in a.sold}
        compensated = {c.order_id for c in a.compensations}
        examples: list[dict[str, Any]] = []
        problems: list[str] = []
        dropped = [p for p in a.payments if p.order_id not in sold_ids and p.order_id not in a.refunded_ids]
        if dropped:
            problems.append(f"{len(dropped)} captured payments ({sum(p.qty for p in dropped)} units) neither shipped "
                            f"nor were refunded")
            examples += [{"problem": "captured_not_refunded", "order_id": p.order_id, "user_id": p.user_id,
                          "qty": p.qty, **s.order_ref(p.order_id)} for p in dropped]
        uncompensated = [r for r in a.refunds if r.order_id not in compensated]
        if uncompensated:
            problems.append(f"{len(uncompensated)} refunds have no compensation")
            examples += [{"problem": "refund_not_compensated", "order_id": r.order_id, "user_id": r.user_id,
                          "qty": r.qty, **s.order_ref(r.order_id)} for r in uncompensated]
        oversold = beyond_stock_audit(s)
        if oversold:
            problems.append(f"{a.net_sold_qty - stock} units sold past stock {stock} were not refunded")
            examples += [{"problem": "oversold_not_refunded", **e} for e in oversold]
        if problems:
            return result(name, "fail", "Payments were not made good: " + "; ".join(problems) + ".", examples)
        shipped = sum(1 for p in a.payments if p.order_id in sold_ids and p.order_id not in a.refunded_ids)
        return result(name, "pass",
                       f"{len(a.payments)} captured payments: {shipped} shipped, {len(a.payments) - shipped} refunded; "
                       f"{len(a.refunds)} refunds, all compensated; net sold {a.net_sold_qty} is within stock {stock}.")
