"""The history against the backend's sold set: nothing acknowledged is lost, nothing sold came from nowhere."""

from __future__ import annotations

from collections import defaultdict
from typing import ClassVar

from oversold.model.calls import Call

from oversold.model.evidence import Evidence

from .invariant import CheckOptions, result
from .result import InvariantResult
from .view import SaleView, done_time


class NoLostSale:
    """Every order with an ``ok`` pay is in the audited sold set; ``info`` pays may be either way."""

    name: ClassVar[str] = "no_lost_sale"
    needs: ClassVar[Evidence] = "per_order_audit"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name = self.name
        acked = s.acked_orders
        if s.audit is None:
            return result(name, "unknown", f"The audit is missing, so {len(acked)} acknowledged paid orders "
                                            f"cannot be reconciled with the sold set.")
        sold_ids = {e.order_id for e in s.audit.sold}
        lost = [oid for oid in acked if oid not in sold_ids]
        if lost:
            examples = []
            for oid in lost:
                first_ok = min(s.ok_pays(oid), key=done_time)
                examples.append({"order_id": oid, "user_id": s.user_of(oid), "qty": s.qty_of(oid),
                                 "paid_time": done_time(first_ok), "ok_pay_op_id": first_ok.op_id,
                                 **s.order_ref(oid)})
            return result(name, "fail",
                           f"{len(lost)} of {len(acked)} acknowledged paid orders "
                           f"({sum(s.qty_of(o) for o in lost)} units) are missing from the audited sold set.", examples)
        acked_set = set(acked)
        unsure = [oid for oid, cs in s.pays.items() if oid not in acked_set and any(c.outcome == "info" for c in cs)]
        in_sold = sum(1 for oid in unsure if oid in sold_ids)
        return result(name, "pass",
                       f"All {len(acked)} acknowledged paid orders are in the audited sold set; of {len(unsure)} orders "
                       f"with only unknown-outcome pays, {in_sold} were sold and {len(unsure) - in_sold} were not.")


class NoPhantomSale:
    """Every audited sold order was placed by some client.

    An order is explained by an ``ok`` order completion carrying its id. An
    unexplained one may be matched to an order whose outcome is unknown
    (``info`` or unfinished) of the same user and quantity; each such order
    explains at most one sold order (a hold is one request's worth of stock).
    """

    name: ClassVar[str] = "no_phantom_sale"
    needs: ClassVar[Evidence] = "per_order_audit"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name = self.name
        if s.audit is None:
            return result(name, "unknown", "The audit is missing, so the sold orders cannot be traced to clients.")
        pool: dict[tuple[str, int], list[Call]] = defaultdict(list)
        for c in s.calls_of("order"):  # already by time, so the earliest unknown order is used first
            if c.outcome == "info":
                pool[(c.user_id, c.qty)].append(c)
        matched, phantoms = 0, []
        placed = s.order_call
        unexplained = [e for e in s.audit.sold if e.order_id not in placed]  # (an explained one is passed over)
        for e in sorted(unexplained, key=lambda e: (e.paid_ms if e.paid_ms is not None else 0, e.order_id)):
            candidates = pool[(e.user_id, e.qty)]
            if candidates:
                candidates.pop(0)
                matched += 1
                continue
            phantoms.append({"order_id": e.order_id, "user_id": e.user_id, "qty": e.qty, "paid_ms": e.paid_ms,
                             "pay_op_ids": s.pay_ids(e.order_id)})
        n = len(s.audit.sold)
        if phantoms:
            return result(name, "fail",
                           f"{len(phantoms)} of {n} audited sold orders ({sum(p['qty'] for p in phantoms)} units) match "
                           f"no client order: no ok order response names them and no unknown-outcome order of the same "
                           f"user and quantity is left to explain them.", phantoms)
        return result(name, "pass", f"All {n} audited sold orders were placed by clients "
                                     f"({matched} explained only by an unknown-outcome order of the same user).")
