"""Stock at rest: conservation of units, holds returned in time, and the sale selling out (liveness)."""

from __future__ import annotations

from typing import Any, ClassVar

from oversold.model.evidence import Evidence, at_least

from .invariant import CheckOptions, result
from .result import InvariantResult
from .view import SaleView


class Conservation:
    """At quiescence available + held + sold == stock, none negative, and counters' sold == audited sold.

    Counters are ``final.counters``, else the audit's own snapshot. Fail on any
    broken part; unknown if the audit is missing (sold cannot be reconciled),
    unless the backend declared it keeps none (evidence below ``per_user_audit``):
    then the counters alone decide.
    """

    name: ClassVar[str] = "conservation"
    needs: ClassVar[Evidence] = "sold_count"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name = self.name
        c = s.counters
        if c is None:
            return result(name, "unknown", "The sale's counters are missing, so conservation cannot be checked.")
        a, h, sold = c.available, c.held, c.sold
        if a is None or h is None or sold is None:
            lacking = ", ".join(k for k, v in (("available", a), ("held", h), ("sold", sold)) if v is None)
            return result(name, "unknown", f"The sale's counters do not report {lacking}, so conservation cannot "
                                           f"be checked.")
        problems: list[str] = []
        if a + h + sold != s.stock:
            problems.append(f"available {a} + held {h} + sold {sold} = {a + h + sold}, not stock {s.stock}")
        for label, v in (("available", a), ("held", h), ("sold", sold)):
            if v < 0:
                problems.append(f"{label} is negative ({v})")
        if c.stock is not None and c.stock != s.stock:
            # A backend that quietly raised its own stock would hide an oversell.
            problems.append(f"the counters' stock {c.stock} is not the sale's stock {s.stock}")
        audited = s.audit.sold_qty if s.audit else None
        if audited is not None and audited != sold:
            problems.append(f"the counters say sold {sold} but the audit lists {audited} units sold")
        example = {"available": a, "held": h, "sold": sold, "stock": s.stock, "audited_sold": audited}
        if problems:
            return result(name, "fail", "Conservation is broken: " + "; ".join(problems) + ".", [example])
        if audited is None and not at_least(opts.evidence, "per_user_audit"):
            return result(name, "pass", f"available {a} + held {h} + sold {sold} = stock {s.stock} (the backend "
                                         f"keeps no audit to reconcile sold with: counters only).")
        if audited is None:
            return result(name, "unknown", f"available {a} + held {h} + sold {sold} = stock {s.stock}, but the audit "
                                            f"is missing so sold cannot be reconciled.")
        return result(name, "pass", f"available {a} + held {h} + sold {sold} = stock {s.stock}, "
                                     f"and the audit agrees on sold.")


class HoldsReturned:
    """No listed hold outlived its TTL plus grace, and the held counter equals the listed holds.

    Holds without ``expires_ms`` never expire by design (``order_deduct``) and
    are left to ``sells_out``. The held counter is read from the audit's own
    snapshot when it has one: it was taken with the hold list, so a reaper
    running between two reads cannot fake a mismatch.
    """

    name: ClassVar[str] = "holds_returned"
    needs: ClassVar[Evidence] = "per_user_audit"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name = self.name
        if s.audit is None:
            return result(name, "unknown", "The audit is missing, so the holds left cannot be checked.")
        now, grace = s.audit.now_ms, opts.grace_ms
        expiring = [h for h in s.audit.holds if h.expires_ms is not None]
        examples: list[dict[str, Any]] = []
        if now is not None:
            for h in sorted(expiring, key=lambda h: (h.expires_ms, h.order_id)):
                if h.expires_ms + grace < now:
                    examples.append({"order_id": h.order_id, "user_id": h.user_id, "qty": h.qty,
                                  "created_ms": h.created_ms, "expires_ms": h.expires_ms,
                                  "overdue_ms": now - h.expires_ms, **s.order_ref(h.order_id)})
        counters = s.audit.counters if s.audit.counters is not None else s.counters
        listed = s.audit.held_qty
        held = counters.held if counters is not None else None
        problems: list[str] = []
        if examples:
            problems.append(f"{len(examples)} holds ({sum(x['qty'] for x in examples)} units) outlived their TTL plus "
                            f"{grace} ms grace")
        if held is not None and held != listed:
            problems.append(f"the held counter is {held} but the listed holds add up to {listed}")
            examples.insert(0, {"counters_held": held, "listed_held": listed})  # first, so the cap never hides it
        if problems:
            return result(name, "fail", "Holds were not returned: " + "; ".join(problems) + ".", examples)
        if now is None and expiring:
            return result(name, "unknown", f"The audit has no now_ms, so {len(expiring)} listed holds cannot be aged.")
        if held is None:
            return result(name, "unknown", f"No hold is overdue, but the counters are missing so held cannot be "
                                            f"compared with the {listed} units listed.")
        return result(name, "pass", f"{len(s.audit.holds)} holds ({listed} units) are left, none past TTL plus "
                                     f"{grace} ms grace, and the held counter agrees.")


class SellsOut:
    """Liveness: where demand exceeded stock, the audited sold quantity reaches the stock."""

    name: ClassVar[str] = "sells_out"
    needs: ClassVar[Evidence] = "per_user_audit"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name = self.name
        demand = sum(c.qty for c in s.calls if c.op == "order")
        if not opts.expect_sell_out:
            return result(name, "pass", "Not checked: the scenario does not expect a sell-out.")
        if demand <= s.stock:
            return result(name, "pass", f"Not checked: demand {demand} did not exceed stock {s.stock}.")
        if s.audit is None:
            return result(name, "unknown", f"Demand {demand} exceeded stock {s.stock}, but the audit is missing "
                                            f"so the sold quantity is unknown.")
        sold = s.audit.sold_qty
        if sold >= s.stock:
            return result(name, "pass", f"Demand {demand} exceeded stock {s.stock} and {sold} units sold.")
        held = s.audit.held_qty
        examples = [{"order_id": h.order_id, "user_id": h.user_id, "qty": h.qty, "created_ms": h.created_ms,
                     "expires_ms": h.expires_ms, **s.order_ref(h.order_id)}
                    for h in sorted(s.audit.holds, key=lambda h: h.order_id)]
        if not examples:
            examples = [{"stock": s.stock, "sold": sold, "left": s.stock - sold, "held": held, "demand": demand}]
        return result(name, "fail",
                       f"Demand {demand} exceeded stock {s.stock} but only {sold} units sold: {s.stock - sold} left "
                       f"unsold, of which {held} are stuck in holds.", examples)
