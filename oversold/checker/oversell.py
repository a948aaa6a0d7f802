"""Safety first: nothing ships beyond stock.

``no_oversell`` compares what the clients were told (acknowledged payments) and
what the backend recorded (the audit's sold set, else its counters) with the stock.
"""

from __future__ import annotations

from typing import Any, ClassVar

from oversold.model.evidence import Evidence

from .invariant import CheckOptions, result
from .result import InvariantResult
from .view import SaleView, done_time


def beyond_stock_audit(s: SaleView) -> list[dict[str, Any]]:
    """The audited sold orders past the stock line, the latest paid ones being the excess (refunded ones left out)."""
    assert s.audit is not None
    shipped = [e for e in s.audit.sold if e.order_id not in s.audit.refunded_ids]
    ordered = sorted(shipped, key=lambda e: (e.paid_ms if e.paid_ms is not None else 0, e.order_id))
    out, total = [], 0
    for e in ordered:
        total += e.qty
        if total > s.stock:
            out.append({"order_id": e.order_id, "user_id": e.user_id, "qty": e.qty, "paid_ms": e.paid_ms,
                        "sold_through": total, **s.order_ref(e.order_id)})
    return out


def beyond_stock_history(s: SaleView) -> list[dict[str, Any]]:
    """The acknowledged payments past the stock line, one per order operation, by time of their first ok pay."""
    out, total = [], 0
    refunded = s.audit.refunded_ids if s.audit else frozenset()
    excused: set[str] = set()  # a refund excuses one acknowledged payment of its id (see acked_refunded)
    for oid, oc, first_ok in s.acked_payments:
        if oid in refunded and oid not in excused:
            excused.add(oid)
            continue
        qty = s.acked_qty(oid, oc)
        total += qty
        if total > s.stock:
            out.append({"order_id": oid, "user_id": oc.user_id if oc else s.user_of(oid), "qty": qty,
                        "paid_time": done_time(first_ok), "sold_through": total, **s.order_ref(oid),
                        "order_op_id": oc.op_id if oc else None, "ok_pay_op_id": first_ok.op_id})
    return out


def recorded_sold(s: SaleView) -> tuple[int | None, int | None]:
    """What the backend recorded as shipped: the audit's net sold, and its counters' sold net of the
    audit's refunded sold units (a refunded order stays in the counters' ``sold``); None where missing."""
    audit = s.audit
    audited = audit.net_sold_qty if audit is not None else None
    counted = s.counters.sold if s.counters is not None else None
    if counted is not None and audit is not None:
        counted -= audit.refunded_sold_qty
    return audited, counted



class NoOversell:
    """Acknowledged paid quantity and audited sold quantity never exceed stock.

    The counters' ``sold`` (net of the audit's refunded sold units) past stock
    fails too, audit or not: the backend's own count says it sold more.

    Without an audit: fail if the history alone (or the counters' ``sold``) goes
    over stock; pass when the backend declares a trustworthy sold count as its
    evidence (``sold_count``) and it and the acknowledged payments are
    within stock; else pass "on the client view" if even counting every unknown-outcome
    (``info``) pay as applied stays within stock; otherwise unknown. The client
    view cannot see a sale nobody asked for; that is ``no_phantom_sale``'s job,
    which is unknown without an audit, so the overall verdict stays inconclusive.

    Refunds: what counts is what *shipped*. A sold order that the audit's
    ``refunds`` list names did not ship, so both views are taken net of it:
    audited sold minus refunded sold units, acknowledged paid minus the
    acknowledged orders that were refunded. An acknowledged payment that was
    refunded is therefore not an oversell (whether it was made good is
    ``refunds_compensated``'s question); a refund never excuses a shipped unit.
    """

    name: ClassVar[str] = "no_oversell"
    needs: ClassVar[Evidence] = "none"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name, stock = self.name, s.stock
        acked = s.acked_paid - s.acked_refunded
        audited = s.audit.net_sold_qty if s.audit else None
        refunded = s.audit.refunded_sold_qty if s.audit else 0
        net = f" net of {refunded} refunded units" if refunded else ""
        _, counted = recorded_sold(s)
        if acked > stock or (audited is not None and audited > stock):
            # Blame the view that overshoots most; the audit wins ties as the backend's own record.
            if audited is not None and audited >= acked:
                examples = beyond_stock_audit(s)
                worst = audited
            else:
                examples = beyond_stock_history(s)
                worst = acked
            recorded = (f"audited sold {audited}{net}" if audited is not None
                        else f"the backend's sold count {counted}" if counted is not None else "no audit")
            return result(name, "fail",
                           f"Sold {worst} units of stock {stock}, {worst - stock} oversold "
                           f"(acknowledged paid {acked}, {recorded}).", examples)
        if counted is not None and counted > stock:
            what = "the counters say" if s.audit is None else f"the audit lists {audited}{net}, but the counters say"
            return result(name, "fail", f"{what[0].upper()}{what[1:]} sold {counted} of stock {stock}, "
                                         f"{counted - stock} oversold.",
                           [{"counters_sold": counted, "stock": stock,
                             **({"audited_sold": audited} if s.audit is not None else {})}])
        if s.audit is not None:
            return result(name, "pass", f"Acknowledged paid {acked} and audited sold {audited}{net} are within "
                                         f"stock {stock}.")
        if counted is not None and opts.evidence == "sold_count":
            # the adapter vouches for the count as the backend's own record of sales, so an unknown-outcome
            # pay that applied is in it: nothing is left to doubt. A backend that promised an audit and
            # failed to give one is not trusted this way (its missing audit is a fault, not a design).
            return result(name, "pass", f"Acknowledged paid {acked} and the backend's sold count {counted} are "
                                         f"within stock {stock} (no audit: the backend keeps a sold count only).")
        acked_set = set(s.acked_orders)
        maybe_orders = sorted(oid for oid, cs in s.pays.items()
                              if oid not in acked_set and any(c.outcome == "info" for c in cs))
        maybe = sum(s.qty_of(oid) for oid in maybe_orders)
        if acked + maybe > stock:
            return result(name, "unknown",
                           f"The audit is missing; acknowledged paid {acked} is within stock {stock}, but {maybe} more "
                           f"units have unknown-outcome pays and could push it over.",
                           [{"order_id": oid, "user_id": s.user_of(oid), "qty": s.qty_of(oid), **s.order_ref(oid)}
                            for oid in maybe_orders])
        return result(name, "pass",
                       f"Client view only (the audit is missing): acknowledged paid {acked} plus {maybe} units with "
                       f"unknown-outcome pays is within stock {stock}.")
