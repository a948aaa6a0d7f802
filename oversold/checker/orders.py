"""The asynchronous order mode: every accepted order is applied or rejected, reconciled order by order."""

from __future__ import annotations

from typing import Any, ClassVar

from oversold.model.calls import Call

from oversold.model.evidence import Evidence

from .invariant import CheckOptions, result
from .result import InvariantResult
from .view import SaleView, done_time

# what an accepted order may end as: applied (a hold, and whatever became of it) or rejected
SETTLED = frozenset({"held", "paid", "cancelled", "expired", "refunded", "rejected", "confirming", "ordered",
                     "captured", "unfulfilled"})


class OrdersApplied:
    """Liveness of the asynchronous order mode: every accepted order ended applied or rejected.

    A sale with ``async_orders`` answers an order 202 ``pending`` and queues it; its
    order processors make it a hold or reject it, and the buyer polls it until then.
    Reconciled per order: once the sale settled the harness reads every order the
    clients were answered 202 for (``final.extra["orders"]``), and each must have left
    ``pending``. An order still pending was accepted and never answered: its buyer
    polls it in vain. A queue length cannot show that: a processor that acknowledged
    an entry and died before applying it (or skipped it) leaves the queue empty and
    the order pending forever. A ``queued`` count above 0 in the final counters fails
    too. Orders the final read could not see count as settled when the audit lists
    them sold or held, else they leave it ``unknown``; without the per-order reads
    (an older run directory) only the queue length and the audit can speak, and an
    accepted order neither sold nor held is ``unknown``. Not checked (pass) for a sale
    that does not queue orders.
    """

    name: ClassVar[str] = "orders_applied"
    needs: ClassVar[Evidence] = "none"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name = self.name
        accepted: dict[str, Call] = {}
        for c in s.calls_of("order"):
            if c.outcome == "ok" and c.done is not None and c.done.status == 202 and c.order_id:
                accepted.setdefault(c.order_id, c)
        queued = s.counters.queued if s.counters is not None else None
        if s.settings.async_orders is not True and queued is None and not accepted:
            return result(name, "pass", "Not checked: the sale does not queue orders.")
        examples: list[dict[str, Any]] = []
        problems: list[str] = []
        if queued is not None and queued > 0:
            problems.append(f"{queued} are still queued once the sale settled")
            examples.append({"queued": queued, "accepted": len(accepted), "stock": s.stock,
                             "sold": s.audit.sold_qty if s.audit else None})
        statuses = s.state.order_status
        listed = ({e.order_id for e in s.audit.sold} | {h.order_id for h in s.audit.holds}) if s.audit else set()
        unresolved: list[str] = []
        stuck = 0
        for oid, c in accepted.items():
            status = statuses.get(oid) if statuses is not None else None
            if status == "pending":
                stuck += 1
                examples.append({"order_id": oid, "user_id": c.user_id, "status": status, "order_op_id": c.op_id,
                                 "accepted_at": done_time(c)})
            elif status not in SETTLED and oid not in listed:
                unresolved.append(oid)
        if stuck:
            problems.insert(0, f"{stuck} accepted orders are still pending: acknowledged (202) and never applied "
                               f"nor rejected")
        if problems:
            return result(name, "fail", f"Of {len(accepted)} accepted (202) orders, " + "; ".join(problems) + ".",
                          examples)
        if queued is None and statuses is None:
            return result(name, "unknown", f"The sale queues orders and {len(accepted)} were accepted (202), but "
                                            f"neither counters nor order reads say whether they were applied.")
        if unresolved:
            why = "could not be read" if statuses is not None else "were not read once the sale settled"
            return result(name, "unknown",
                          f"{len(unresolved)} of {len(accepted)} accepted (202) orders {why} and are neither sold "
                          f"nor held, so whether they were applied is unknown.",
                          [{"order_id": oid, "user_id": accepted[oid].user_id, "order_op_id": accepted[oid].op_id}
                           for oid in unresolved])
        return result(name, "pass", f"All {len(accepted)} accepted (202) orders were applied or rejected, each "
                                     f"read once the sale settled; none is left queued.")
