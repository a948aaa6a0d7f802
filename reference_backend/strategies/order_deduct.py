"""``order_deduct`` (拍下减库存): an order atomically takes stock for good; no expiry.

Each step is one Lua script (``lua/order_deduct_*.lua``) that also checks and
stores the idempotency key. An order holds its units until it is paid or
cancelled; nothing ever reaps it, so a hoarder who orders and never pays
drains the sale (the article's "order 1,000 and never pay"). It never oversells.

Usage::

    strategy = OrderDeduct(store, StrategyOptions())
    reply = await strategy.order("s1", "alice", 1, key="k-1")   # Reply(201, {..., "expires_ms": None})
"""

from __future__ import annotations

from .base import LuaStrategy


class OrderDeduct(LuaStrategy):
    """Atomic deduction at order into an order that never expires."""

    name = "order_deduct"
    scripts = {"order": "order_deduct_order", "pay": "order_deduct_pay", "cancel": "order_deduct_cancel"}
