"""Stock comes back once per hold: never twice, never while the hold is still held."""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from .invariant import CheckOptions, result
from .result import InvariantResult
from .view import SaleView

class StockReturnedOnce:
    """Each hold gives its units back to stock once, per order, from the audit's ``released`` list.

    Conservation sees the totals only: a hold returned twice (a cancel and the reaper both
    releasing it) next to one never returned balances out. Per order:

    - **twice**: an order gave back more units than it held;
    - **while held**: an order the audit still lists as a hold already gave units back.

    A sold order may have given its hold back once (it expired, then a payment took fresh stock).
    Where a payment after expiry takes fresh units into a second hold (``pre_deduct_ledger`` with
    ``pay_after_expiry: fresh_stock``: the new hold is confirmed with the warehouse ledger, and a
    refusal gives it back too), an order may give back twice its units, and be listed as held
    after giving back once; with the strategy or ``pay_after_expiry`` unknown, so may every order.
    A hold that never gave back is left to conservation (the totals) and ``holds_returned``: a
    backend that records only some of its releases must not turn that into a false alarm.
    ``released`` is optional in the contract: without it (or without an audit) the invariant passes
    unchecked and conservation speaks for the totals. Linear in the history and the audit.
    """

    name: ClassVar[str] = "stock_returned_once"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name = self.name
        a = s.audit
        if a is None or a.released is None:
            return result(name, "pass", "Not checked: the audit lists no returned holds (released); conservation "
                                         "checks the totals.")
        returned: Counter[str] = Counter()
        for oid, units in a.released:
            returned[oid] += units
        held = {h.order_id for h in a.holds}
        holds_each = 2 if second_hold_possible(s) else 1
        examples: list[dict[str, Any]] = []
        for oid in sorted(returned):
            qty = s.qty_of(oid)
            if qty and returned[oid] > qty * holds_each:
                examples.append({"problem": "returned_twice", "order_id": oid, "qty": qty,
                                 "returned": returned[oid], **s.order_ref(oid)})
            elif oid in held and not (holds_each == 2 and returned[oid] <= qty):
                examples.append({"problem": "returned_while_held", "order_id": oid, "qty": qty,
                                 "returned": returned[oid], **s.order_ref(oid)})
        if examples:
            n = Counter(e["problem"] for e in examples)
            return result(name, "fail", f"{len(examples)} holds gave their units back wrongly: "
                                         f"{n['returned_twice']} more than once, {n['returned_while_held']} while "
                                         f"still held.", examples)
        return result(name, "pass", f"{len(returned)} holds gave {sum(returned.values())} units back, each once, "
                                     f"none while still held.")


def second_hold_possible(s: SaleView) -> bool:
    """Can a payment after expiry have taken fresh units into a new hold of the same order? Only
    ``pre_deduct_ledger`` does (its fresh units wait in a confirming hold for the ledger); an unknown
    strategy or ``pay_after_expiry`` is taken to allow it, so the invariant never fails falsely."""
    settings = s.settings
    if settings.pay_after_expiry == "refuse":
        return False
    ledger = s.audit is not None and s.audit.ledger is not None
    return ledger or settings.strategy in (None, "pre_deduct_ledger")
