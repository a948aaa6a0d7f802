"""An order's life goes one way: a cancelled or refunded order never goes back to sold."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from oversold.model.calls import Call

from .invariant import CheckOptions, result
from .limits import NEVER_EXPIRE
from .result import InvariantResult
from .view import SaleView, done_time


class NoResurrection:
    """A cancelled order is never paid or sold; a refunded order is never paid again.

    - **cancelled**: an order whose cancel was acknowledged (``ok``) while its hold was
      certainly still live ends ``cancelled``, and no payment may then succeed (the contract
      answers ``order_cancelled``; a payment that came first makes the cancel ``already_paid``),
      so an ``ok`` pay of it, or the audit listing it sold, is a resurrection. "Certainly live":
      the sale refuses payments after expiry (``pay_after_expiry: refuse``: an ``ok`` cancel
      leaves nothing payable), or the cancel completed before the order's invoke plus the hold
      TTL as one client's clock saw both, or the strategy's orders never expire. A cancel that may have met an expired hold
      (``fresh_stock``: a later payment may take fresh stock) is left out.
    - **refunded**: a payment invoked after an acknowledged ``refund`` of the order completed
      may not succeed (``order_refunded``), unless it retries, under its key, a payment that was
      acknowledged before the refund (the stored first answer). Only payments the refunding client
      sent itself are timed against its refund (one clock: hosts' clocks may disagree).

    Linear in the history. Refunds are seen only where the history records them (an admin
    actor's ``refund`` operations). Without an audit the history can fail it, but passes it only
    when no order was cancelled.
    """

    name: ClassVar[str] = "no_resurrection"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name = self.name
        refuse = s.settings.pay_after_expiry == "refuse"
        ttl_s = math.inf if s.settings.strategy in NEVER_EXPIRE else s.state.hold_ttl_ms / 1000.0
        cancelled: dict[str, Call] = {}  # order id -> first ok cancel that certainly cancelled it
        refunded: dict[str, Call] = {}  # order id -> first ok refund
        for c in (*s.calls_of("cancel"), *s.calls_of("refund")):  # (two dicts: their order apart is no matter)
            oid = c.order_id
            if c.outcome != "ok" or not oid:
                continue
            if c.op == "cancel" and oid not in cancelled:
                oc = s.order_call.get(oid)
                live = refuse or math.isinf(ttl_s) or (oc is not None and oc.first.process == c.first.process
                                                        and done_time(c) < oc.time + ttl_s)
                if live:
                    cancelled[oid] = c
            elif c.op == "refund" and oid not in refunded:
                refunded[oid] = c
        sold = {e.order_id for e in s.audit.sold} if s.audit is not None else set()
        examples: list[dict[str, Any]] = []
        for oid in sorted(cancelled):
            c = cancelled[oid]
            pays = s.ok_pays(oid)
            if pays or oid in sold:
                examples.append({"order_id": oid, "after": "cancel", "cancel_op_id": c.op_id,
                                 "cancelled_at": done_time(c), "ok_pay_op_ids": [p.op_id for p in pays],
                                 "in_audit_sold": oid in sold, **s.order_ref(oid)})
        for oid in sorted(refunded):
            r = refunded[oid]
            earlier = {p.key for p in s.ok_pays(oid) if done_time(p) < r.time}
            again = [p for p in s.ok_pays(oid) if p.first.process == r.first.process and p.time > done_time(r)
                     and p.key not in earlier]
            if again:
                examples.append({"order_id": oid, "after": "refund", "refund_op_id": r.op_id,
                                 "refunded_at": done_time(r), "ok_pay_op_ids": [p.op_id for p in again],
                                 **s.order_ref(oid)})
        if examples:
            n_c = sum(1 for e in examples if e["after"] == "cancel")
            return result(name, "fail", f"{len(examples)} orders came back after they ended: {n_c} cancelled ones "
                                         f"were paid or sold, {len(examples) - n_c} refunded ones paid again.",
                          examples)
        if s.audit is None and cancelled:
            return result(name, "unknown", f"No cancelled or refunded order was paid again as far as the history "
                                            f"shows, but the audit is missing, so whether {len(cancelled)} cancelled "
                                            f"orders were sold cannot be ruled out.")
        return result(name, "pass", f"No order came back: of {len(cancelled)} certainly cancelled orders none was "
                                     f"paid or sold, of {len(refunded)} refunded ones none was paid again.")
