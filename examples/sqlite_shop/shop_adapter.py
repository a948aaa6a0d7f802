"""The oversold adapter for the SQLite shop (``app.py``): a single-step buy API with a sold count.

What it declares:

- ``single_step``: a purchase is one ``POST /api/buy``; no hold, no payment.
- ``evidence = "sold_count"``: the shop hands out its own order ids, which the
  clients never choose, so there is no audit by the clients' order ids; what it
  has is a trustworthy count of what it sold: the order rows, read straight from
  its database in ``read_state``.
- ``idempotent_pay = False``: a buy sent again is a second buy, so the swarm
  never resends one whose outcome is unknown.

Its options (the scenario's ``backend.adapter_options``): ``db``, the shop's
SQLite file; ``endpoint``, ``safe`` (``/api/buy``) or ``unsafe``
(``/api/buy-unsafe``, the broken one).

Usage (scenario)::

    backend:
      url: http://127.0.0.1:8080
      adapter: shop_adapter:SqliteShopAdapter
      adapter_options: {db: shop.db, endpoint: safe}
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Mapping

from oversold.adapters.base import Adapter, Request, StateRead
from oversold.adapters.outcome import Outcome, classify

ENDPOINTS = {"safe": "/api/buy", "unsafe": "/api/buy-unsafe"}


class SqliteShopAdapter(Adapter):
    """The SQLite shop in the contract's terms; setup and the final read go to its database."""

    name = "sqlite-shop"
    evidence = "sold_count"
    single_step = True
    idempotent_pay = False

    def _db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.options["db"], timeout=10, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

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
        if op == "counters":  # the shop shows what is left; the rest comes from its database
            # and there are no holds by design (one-step buys): nothing held can come back, so 0 left is sold out
            return Outcome("ok", status, None, {"available": body.get("stock_left"), "held": 0})
        return Outcome("ok", status, None, {"order_id": str(body.get("order_id")), "status": "paid"})

    # -- the lifecycle: SQL against the shop's database ----------------------------------

    def setup(self, sale_id: str, stock: int, settings: Mapping[str, Any]) -> bool:
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM orders WHERE item = ?", (sale_id,))
            conn.execute("INSERT OR REPLACE INTO items (id, stock, initial) VALUES (?, ?, ?)",
                         (sale_id, stock, stock))
            conn.execute("COMMIT")
        finally:
            conn.close()
        return True

    def read_state(self, sale_id: str) -> StateRead | None:
        conn = self._db()
        try:
            item = conn.execute("SELECT initial, stock FROM items WHERE id = ?", (sale_id,)).fetchone()
            sold = conn.execute("SELECT COALESCE(SUM(qty), 0) FROM orders WHERE item = ?", (sale_id,)).fetchone()[0]
        finally:
            conn.close()
        if item is None:
            return StateRead(counters=None)
        return StateRead(counters={"stock": item[0], "available": item[1], "held": 0, "sold": sold})
