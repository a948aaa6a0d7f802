"""Stock comes back once per hold: never twice, never while still held, never not at all after a cancel."""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from .invariant import CheckOptions, result
from .result import InvariantResult
from .view import SaleView

# strategies whose orders hold nothing: there is no stock to give back
HOLDS_NOTHING = ("payment_deduct",)


class StockReturnedOnce:
    """Each hold gives its units back to stock once, per order, from the audit's ``released`` list.

    Conservation sees the totals only: a hold returned twice (a cancel and the reaper both
    releasing it) next to one never returned balances out. Per order:

    - **twice**: an order gave back more units than it held;
    - **while held**: an order the audit still lists as a hold already gave units back;
    - **never**: an order answered as a hold (201) whose cancel was acknowledged, neither sold nor
      held at the end, gave nothing back (its units leaked).

    A sold order may have given its hold back once (it expired, then a payment took fresh stock).
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
        sold = {e.order_id for e in a.sold}
        examples: list[dict[str, Any]] = []
        for oid in sorted(returned):
            qty = s.qty_of(oid)
            if qty and returned[oid] > qty:
                examples.append({"problem": "returned_twice", "order_id": oid, "qty": qty,
                                 "returned": returned[oid], **s.order_ref(oid)})
            elif oid in held:
                examples.append({"problem": "returned_while_held", "order_id": oid, "qty": qty,
                                 "returned": returned[oid], **s.order_ref(oid)})
        if s.settings.strategy not in HOLDS_NOTHING:
            cancelled = sorted({c.order_id for c in s.calls
                                if c.op == "cancel" and c.outcome == "ok" and c.order_id})
            for oid in cancelled:
                oc = s.order_call.get(oid)
                if (oc is not None and oc.done is not None and oc.done.status == 201 and not returned[oid]
                        and oid not in sold and oid not in held):
                    examples.append({"problem": "never_returned", "order_id": oid, "qty": oc.qty,
                                     "returned": 0, **s.order_ref(oid)})
        if examples:
            n = Counter(e["problem"] for e in examples)
            return result(name, "fail", f"{len(examples)} holds did not give their units back exactly once: "
                                         f"{n['returned_twice']} twice, {n['returned_while_held']} while still held, "
                                         f"{n['never_returned']} never after an acknowledged cancel.", examples)
        return result(name, "pass", f"{len(returned)} holds gave {sum(returned.values())} units back, each once; "
                                     f"none still held, none cancelled without giving back.")
