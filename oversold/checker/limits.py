"""Per-user purchase limits (限购): no user holds or bought more than the limit, at the end or at any moment."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any, ClassVar

from oversold.model.calls import Call

from oversold.model.evidence import Evidence

from .invariant import CheckOptions, result
from .result import InvariantResult
from .view import SaleView, done_time

# orders of these strategies hold their units until cancelled or paid: they never expire
NEVER_EXPIRE = ("order_deduct", "payment_deduct")


class PerUserLimits:
    """No user ever had more units than the sale's ``per_user_limit``: held and bought, not refunded.

    Two views, either fails it:

    - **at the end**, from the audit: each user's sold (not refunded) and held units. Every
      outcome counts here, ``info`` ones too: an order whose answer was lost counts once the
      audit lists it.
    - **at every moment**, from the history: a race on the limit (two parallel orders of one
      account both let through) may leave nothing at the end once one hold lapsed, so the
      units each user was *certainly* holding at once are counted. An acknowledged order
      (``ok``, not a 202 still to be applied) holds its units from its completion until the
      earliest moment it could have lapsed: its invoke plus the hold TTL (the backend cannot
      have created the hold before the client asked), the invoke of a cancel of it or of its
      first payment; an order of ``order_deduct`` or ``payment_deduct`` never lapses by itself. An
      order the audit lists sold holds them again from its first ``ok`` payment until a
      ``refund`` of it was invoked (refunded by the audit, with no refund in the history: not
      counted past the payment). Every bound leans to fewer units, so an overlap above the
      limit is a certain breach, never a false alarm. Times are compared only between records of
      one client (the history's ``process``: one Locust user, one clock), so clock skew between
      hosts of a distributed swarm cannot fake an overlap; an account shared by clients on several
      processes is judged client by client at every moment, and as a whole at the end.

    The limit comes from ``final.extra["sale"]``, else the counters' ``per_user_limit``;
    missing or 0 means no limit, and the invariant passes unchecked. Without an audit the
    history can fail it, but not pass it.
    """

    name: ClassVar[str] = "per_user_limits"
    needs: ClassVar[Evidence] = "per_user_audit"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name = self.name
        limit = s.settings.per_user_limit
        if not limit:
            return result(name, "pass", "Not checked: the sale has no per-user limit.")
        examples = at_once_over(s, limit)
        problems = []
        if examples:
            worst = max(examples, key=lambda e: e["units"])
            problems.append(f"{len(examples)} users held or bought more than the limit at one moment (the most is "
                            f"{worst['units']} units, by {worst['user_id']})")
        units: Counter[str] = Counter()
        orders: dict[str, list[str]] = defaultdict(list)
        if s.audit is not None:
            for e in s.audit.sold:
                if e.order_id not in s.audit.refunded_ids:
                    units[e.user_id] += e.qty
                    orders[e.user_id].append(e.order_id)
            for h in s.audit.holds:
                units[h.user_id] += h.qty
                orders[h.user_id].append(h.order_id)
        over = sorted((u for u, n in units.items() if n > limit), key=lambda u: (-units[u], u))
        if over:
            problems.insert(0, f"{len(over)} users hold or bought more than it at the end; the most is "
                               f"{units[over[0]]} units, by {over[0]}")
            examples = [{"when": "end", "user_id": u, "units": units[u], "limit": limit,
                         "order_ids": sorted(orders[u])} for u in over] + examples
        if problems:
            return result(name, "fail", f"The per-user limit {limit} was broken: " + "; ".join(problems) + ".",
                          examples)
        if s.audit is None:
            return result(name, "unknown", f"No user held more than the limit {limit} at once as far as the history "
                                            f"shows, but the audit is missing, so the units each user holds or "
                                            f"bought at the end cannot be compared with it.")
        most = max(units.values(), default=0)
        return result(name, "pass", f"No user holds or bought more than the per-user limit {limit}, at the end "
                                     f"(the most is {most} units, across {len(units)} users) or at any moment the "
                                     f"history shows.")


def at_once_over(s: SaleView, limit: int) -> list[dict[str, Any]]:
    """Users whose certainly live units went above ``limit`` at one moment, with the orders then live."""
    never = s.settings.strategy in NEVER_EXPIRE
    ttl_s = math.inf if never else s.state.hold_ttl_ms / 1000.0
    sold = {e.order_id for e in s.audit.sold} if s.audit is not None else set()
    refunded = s.audit.refunded_ids if s.audit is not None else frozenset()
    first_end: dict[str, float] = {}  # order id -> invoke of its first cancel or pay (the hold may end there)
    refund_at: dict[str, float] = {}
    for c in s.calls:
        oid = c.order_id
        if not oid:
            continue
        if c.op in ("cancel", "pay"):
            first_end[oid] = min(first_end.get(oid, math.inf), c.time)
        elif c.op == "refund" and c.outcome != "fail":
            refund_at[oid] = min(refund_at.get(oid, math.inf), c.time)
    # (user, client) -> (start, end, qty, order): one client's records share one clock
    spans: dict[tuple[str, str], list[tuple[float, float, int, str]]] = defaultdict(list)
    for oid, oc in s.order_call.items():
        if oc.done is None or oc.done.status == 202:
            continue
        who = (oc.user_id, oc.first.process)
        start = done_time(oc)
        end = min(oc.time + ttl_s, first_end.get(oid, math.inf))
        if end > start:
            spans[who].append((start, end, oc.qty, oid))
        pays = s.ok_pays(oid)
        if pays and oid in sold:
            paid = min(done_time(p) for p in pays)
            until = refund_at.get(oid, paid if oid in refunded else math.inf)
            if until > paid:
                spans[who].append((paid, until, oc.qty, oid))
    found = []
    for user, client in sorted(spans):
        worst = _peak(spans[(user, client)])
        if worst is not None and worst[0] > limit:
            units, at, live = worst
            found.append({"when": "at_once", "user_id": user, "client": client, "units": units, "limit": limit,
                          "time": at, "order_ids": live, **_refs(s, live)})
    return found


def _peak(spans: list[tuple[float, float, int, str]]) -> tuple[int, float, list[str]] | None:
    """The most units live at once (half-open spans), when, and which orders."""
    events = sorted([(a, 1, q, o) for a, _, q, o in spans] + [(b, 0, q, o) for _, b, q, o in spans])
    live: dict[str, int] = {}
    units, best = 0, None
    for t, starts, q, o in events:  # at a tie an end comes first: [a, b) spans that only touch never overlap
        if starts:
            live[o] = live.get(o, 0) + q
            units += q
            if best is None or units > best[0]:
                best = (units, t, sorted(live))
        else:
            live[o] -= q
            units -= q
            if not live[o]:
                del live[o]
    return best


def _refs(s: SaleView, order_ids: list[str]) -> dict[str, Any]:
    calls: list[Call] = [s.order_call[o] for o in order_ids if o in s.order_call]
    return {"order_op_ids": [c.op_id for c in calls]}
