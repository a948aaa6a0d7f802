"""``pre_deduct`` (预扣库存): an order atomically holds stock until a TTL; payment confirms the hold.

Each step is one Lua script (``lua/pre_deduct_*.lua``) that also checks and
stores the idempotency key. Expired holds go back to stock by the reaper (or by
the pay/cancel that finds them first); a released hold is never confirmed later.

Usage::

    strategy = PreDeduct(store, StrategyOptions())
    reply = await strategy.order("s1", "alice", 1, key="k-1")   # Reply(201, {...order...})
"""

from __future__ import annotations

from .base import LuaStrategy


class PreDeduct(LuaStrategy):
    """Atomic pre-deduction into a hold with a TTL, confirmed at payment."""

    name = "pre_deduct"
    supports_async = True  # its order script calls async_accept / new_order_id
    scripts = {"order": "pre_deduct_order", "pay": "pre_deduct_pay", "cancel": "pre_deduct_cancel"}
    batch_script = "pre_deduct_order_batch"  # used by the subclasses that coalesce orders
