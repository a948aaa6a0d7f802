"""Per-user purchase limits (限购): no user ends with more than the limit."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import ClassVar

from oversold.model.evidence import Evidence

from .invariant import CheckOptions, result
from .result import InvariantResult
from .view import SaleView


class PerUserLimits:
    """No user ends with more units than the sale's ``per_user_limit`` (bought and not refunded, plus held).

    The limit comes from ``final.extra["sale"]``, else the counters'
    ``per_user_limit``; missing or 0 means no limit, and the invariant passes
    unchecked. The audit is needed to count each user's units.
    """

    name: ClassVar[str] = "per_user_limits"
    needs: ClassVar[Evidence] = "per_user_audit"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name = self.name
        limit = s.settings.per_user_limit
        if not limit:
            return result(name, "pass", "Not checked: the sale has no per-user limit.")
        if s.audit is None:
            return result(name, "unknown", f"The audit is missing, so the units each user holds or bought cannot be "
                                            f"compared with the limit {limit}.")
        units: Counter[str] = Counter()
        orders: dict[str, list[str]] = defaultdict(list)
        for e in s.audit.sold:
            if e.order_id not in s.audit.refunded_ids:
                units[e.user_id] += e.qty
                orders[e.user_id].append(e.order_id)
        for h in s.audit.holds:
            units[h.user_id] += h.qty
            orders[h.user_id].append(h.order_id)
        over = sorted((u for u, n in units.items() if n > limit), key=lambda u: (-units[u], u))
        if over:
            return result(name, "fail",
                           f"{len(over)} users hold or bought more than the per-user limit {limit}; the most is "
                           f"{units[over[0]]} units, by {over[0]}.",
                           [{"user_id": u, "units": units[u], "limit": limit, "order_ids": sorted(orders[u])}
                            for u in over])
        most = max(units.values(), default=0)
        return result(name, "pass", f"No user holds or bought more than the per-user limit {limit} "
                                     f"(the most is {most} units, across {len(units)} users).")
