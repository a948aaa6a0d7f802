"""Stock at rest: conservation of units, holds returned in time, and the sale selling out (liveness)."""

from __future__ import annotations

from typing import Any, ClassVar

from oversold.model.calls import Call
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
    """Liveness: where demand exceeded stock, the audited sold quantity reaches the stock.

    Unsold units stuck in holds fail it. Unsold units back on sale (their holds lapsed or
    were cancelled) fail it only when an order came after they were back and was refused
    as sold out; when no order did, the run ended before the sale had its chance (``-t``
    cut it short): that is ``unknown``, never a failure, as nothing says the backend would
    not have sold them.
    """

    name: ClassVar[str] = "sells_out"
    needs: ClassVar[Evidence] = "per_user_audit"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name = self.name
        demand = sum(c.qty for c in s.calls_of("order"))
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
        unsold = s.stock - sold
        if held == 0:
            back_at = back_on_sale_at(s, opts.grace_ms)
            # after back_at nothing more comes back, so at least `unsold` units were on sale then
            refused = [c for c in s.calls if c.op == "order" and c.outcome == "fail" and c.qty <= unsold
                       and (back_at is None or c.time > back_at) and refused_as_sold_out(c)]
            if not refused:
                when = "" if back_at is None else " once their holds lapsed or were cancelled"
                return result(name, "unknown",
                              f"Not decided: the run ended before the sale could sell out. Demand {demand} exceeded "
                              f"stock {s.stock} and {sold} units sold; the other {unsold} were back on sale{when}, "
                              f"none stuck in holds, and no order was refused as sold out after that. This is not "
                              f"a safety violation: run longer (swarm.duration_s, locust -t) to test liveness.")
            first = refused[0]
            return result(name, "fail",
                          f"Demand {demand} exceeded stock {s.stock} but only {sold} units sold: {unsold} left "
                          f"unsold and back on sale, yet {len(refused)} later orders for no more than that were refused "
                          f"as sold out.",
                          [{"stock": s.stock, "sold": sold, "left": unsold, "held": held, "demand": demand,
                            "refused_orders": len(refused), "first_refused_op_id": first.op_id,
                            "first_refused_at": first.time}])
        examples = [{"order_id": h.order_id, "user_id": h.user_id, "qty": h.qty, "created_ms": h.created_ms,
                     "expires_ms": h.expires_ms, **s.order_ref(h.order_id)}
                    for h in sorted(s.audit.holds, key=lambda h: h.order_id)]
        return result(name, "fail",
                       f"Demand {demand} exceeded stock {s.stock} but only {sold} units sold: {unsold} left "
                       f"unsold, of which {held} are stuck in holds.", examples)


def back_on_sale_at(s: SaleView, grace_ms: int) -> float | None:
    """When (client clock, seconds) the last unsold units went back on sale: the latest lapse or
    cancel of an ok order that neither sold nor is still held; None when no hold went back.

    A lapse is placed at the order's completion plus the hold TTL plus the grace a reaper gets: the
    backend started the TTL before it answered, so the estimate is late, never early (an order is
    counted as coming after the return only when it surely did).
    """
    assert s.audit is not None
    still = {h.order_id for h in s.audit.holds} | set(s.audited_qty)
    cancelled = {c.order_id: (c.done_time or c.time) for c in s.calls if c.op == "cancel" and c.outcome == "ok"}
    latest: float | None = None
    for oid, oc in s.order_call.items():
        if oid in still:
            continue
        done = oc.done_time if oc.done_time is not None else oc.time
        at = cancelled.get(oid, done + (s.state.hold_ttl_ms + grace_ms) / 1000)
        latest = at if latest is None else max(latest, at)
    return latest


def refused_as_sold_out(c: Call) -> bool:
    """A refused order whose reason is no stock (or not given): not a per-user limit or a policy refusal."""
    code = c.done.code if c.done is not None else None
    return code in (None, "sold_out")
