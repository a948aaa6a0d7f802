"""``pre_deduct_coalesced``: ``pre_deduct`` whose concurrent orders share one script call.

The holds, payments, cancels and every per-order rule are ``pre_deduct``'s,
down to the Lua: an order is placed by the same ``hold_order`` step. What
differs is the trip to Redis. The node queues the orders of a sale that
arrive together (``reference_backend/coalesce.py``) and places them with one
``pre_deduct_order_batch.lua`` call, each order in turn inside that one atomic
step, each answered on its own: its idempotency key, the user's limit (two
orders of one user in a batch count as two orders in a row), the scalper
verdict, ``sold_out``, the hold's TTL. A lone order goes out at once; orders
that arrive while a batch is in flight go in the next one
(``--coalesce-window-us``, ``--coalesce-max`` tune it).

It is a strategy of its own so that the two order paths can be compared by
name in the benchmarks (``benchmarks/order_path.py``, ``oversold bench``).

Usage::

    strategy = PreDeductCoalesced(store, StrategyOptions(coalesce=CoalesceConfig(window_us=0, max_batch=64)))
    reply = await strategy.order("s1", "alice", 1, key="k-1")   # Reply(201, {...order...})
"""

from __future__ import annotations

from .pre_deduct import PreDeduct


class PreDeductCoalesced(PreDeduct):
    """Pre-deduction into holds, concurrent orders of a sale placed by one batch script call."""

    name = "pre_deduct_coalesced"
    coalesce = True
