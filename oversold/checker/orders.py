"""The asynchronous order mode: every accepted order is applied."""

from __future__ import annotations

from typing import ClassVar

from oversold.model.evidence import Evidence

from .invariant import CheckOptions, result
from .result import InvariantResult
from .view import SaleView


class OrdersApplied:
    """Liveness of the asynchronous order mode: every accepted order was applied, none is left queued.

    A sale with ``async_orders`` answers an order 202 ``pending`` and queues it; its
    order processors make it a hold or reject it, and the buyer polls it until then.
    Once the sale settled the counters' ``queued`` (accepted, not yet applied) must
    be 0: an order still queued was accepted and never answered (its processors are
    dead or stuck), its buyer polls it in vain. Demand may stay under stock for just
    that reason (buyers wait on their queued orders), so ``sells_out`` cannot be
    relied on to notice. Not checked (pass) for a sale
    that does not queue orders; unknown when it does and no counters say how many
    are still queued.
    """

    name: ClassVar[str] = "orders_applied"
    needs: ClassVar[Evidence] = "none"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name = self.name
        accepted = sum(1 for c in s.calls
                       if c.op == "order" and c.outcome == "ok" and c.done is not None and c.done.status == 202)
        queued = s.counters.queued if s.counters is not None else None
        if s.settings.async_orders is not True and queued is None:
            return result(name, "pass", "Not checked: the sale does not queue orders.")
        if queued is None:
            return result(name, "unknown", f"The sale queues orders (async_orders) and {accepted} were accepted (202), "
                                            f"but no counters say how many are still queued.")
        if queued > 0:
            return result(name, "fail",
                           f"{queued} accepted orders were never applied: still queued once the sale settled "
                           f"({accepted} orders were accepted with 202); no order processor took them.",
                           [{"queued": queued, "accepted": accepted, "stock": s.stock,
                             "sold": s.audit.sold_qty if s.audit else None}])
        return result(name, "pass", f"All {accepted} accepted (202) orders were applied: none is left queued.")
