"""The oversold adapter for the PostgreSQL + Redis shop (``app.py``): a single-step buy API whose
order rows are an audit by user.

What it declares:

- ``single_step``: a purchase is one ``POST /api/buy``; no hold, no payment.
- ``evidence = "per_user_audit"``: the order rows say who bought how many, but
  under the shop's own ids, which the clients never choose. So ``read_state``
  gives them as the audit (sold rows by user) and the checker decides what
  needs no client order id: no oversell, conservation, per-user limits...
  ``no_lost_sale``/``no_phantom_sale`` (matching rows to clients' orders) are not
  applicable.
- ``idempotent_pay = False``: a buy sent again is a second buy.

Its options (the scenario's ``backend.adapter_options``): ``dsn`` (PostgreSQL),
``redis`` (the shop's Redis URL, to set the cached stock up), ``endpoint``:
``safe`` (``/api/buy``), ``fast`` (``/api/buy-fast``, the broken one) or
``locked`` (``/api/buy-locked``, broken only when its lock holder stalls past the TTL).

Usage (scenario)::

    backend:
      url: http://127.0.0.1:8080
      adapter: shop_adapter:PgRedisShopAdapter
      adapter_options: {dsn: "host=127.0.0.1 port=5432 dbname=shop user=shop",
                        redis: "redis://127.0.0.1:6379/0", endpoint: safe}
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import psycopg
import redis

from app import SCHEMA  # the shop's own schema: its migration, run by setup before each run

from oversold.adapters.base import Adapter, Request, StateRead
from oversold.adapters.outcome import Outcome, classify

ENDPOINTS = {"safe": "/api/buy", "fast": "/api/buy-fast", "locked": "/api/buy-locked"}


class PgRedisShopAdapter(Adapter):
    """The PostgreSQL + Redis shop in the contract's terms; setup and the final read go to its database."""

    name = "pg-redis-shop"
    evidence = "per_user_audit"
    single_step = True
    idempotent_pay = False

    # -- requests (pure) ---------------------------------------------------------------

    def buy(self, sale_id: str, user_id: str, qty: int, key: str) -> Request:
        path = ENDPOINTS[self.options.get("endpoint", "safe")]
        return Request("POST", path, {"item": sale_id, "user": user_id, "qty": qty}, name="buy")

    def counters(self, sale_id: str) -> Request:
        return Request("GET", f"/api/items/{sale_id}", name="item")

    def outcome(self, op: str, status: int, content: bytes | None, error: BaseException | None) -> Outcome:
        try:
            body = json.loads(content) if status and content else None
        except ValueError:
            body = None
        kind = classify(status, error)
        if status == 409:
            return Outcome("fail", status, "sold_out", None)
        if kind != "ok" or not isinstance(body, dict):
            return Outcome(kind, status or 0, None, None, error)
        if op == "counters":
            # no holds by design (one-step buys): nothing held can come back, so 0 left is sold out
            return Outcome("ok", status, None, {"available": body.get("stock_left"), "held": 0})
        return Outcome("ok", status, None, {"order_id": str(body.get("order_id")), "status": "paid"})

    # -- the lifecycle: SQL against the shop's database, and its cache ---------------------

    def setup(self, sale_id: str, stock: int, settings: Mapping[str, Any]) -> bool:
        with psycopg.connect(self.options["dsn"]) as conn:  # one transaction, committed on exit
            conn.execute(SCHEMA)
            conn.execute("DELETE FROM orders WHERE item = %s", (sale_id,))
            conn.execute("INSERT INTO items (id, stock, initial) VALUES (%s, %s, %s) ON CONFLICT (id) "
                         "DO UPDATE SET stock = EXCLUDED.stock, initial = EXCLUDED.initial", (sale_id, stock, stock))
        cache = redis.Redis.from_url(self.options["redis"])
        try:
            cache.set(f"stock:{sale_id}", stock)
        finally:
            cache.close()
        return True

    def read_state(self, sale_id: str) -> StateRead | None:
        with psycopg.connect(self.options["dsn"]) as conn:
            with conn.transaction():  # one snapshot: the rows and the stock column agree
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                item = conn.execute("SELECT initial, stock FROM items WHERE id = %s", (sale_id,)).fetchone()
                rows = conn.execute("SELECT id, user_id, qty, (extract(epoch FROM created) * 1000)::bigint "
                                    "FROM orders WHERE item = %s ORDER BY id", (sale_id,)).fetchall()
        if item is None:
            return StateRead(counters=None)
        sold = sum(r[2] for r in rows)
        counters = {"stock": item[0], "available": item[1], "held": 0, "sold": sold}
        audit = {"counters": counters, "holds": [],
                 "sold": [{"order_id": f"row-{r[0]}", "user_id": r[1], "qty": r[2], "paid_ms": r[3]} for r in rows]}
        return StateRead(counters=counters, audit=audit)
