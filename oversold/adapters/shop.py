"""An example adapter: a shop API shaped nothing like the contract.

The shop (a tiny server in ``tests/shop_app.py``) is the common envelope
style: every business answer is HTTP 200 with ``{"code": 0, "msg": "ok",
"data": {...}}``, a refusal is a non-zero ``code`` (``1001`` out of stock,
...), ids travel in the body, the request id is the ``X-Request-Id`` header,
stock is ``{"total", "free", "locked", "sold"}``, and there is no audit read.
This adapter says all of that in the contract's terms, so the swarm, the
sold-out watch and the checker work unchanged; without an audit the checker
decides what the history and the counters allow and names the rest unknown.

=======================================  ==========================================
contract operation                       shop request
=======================================  ==========================================
order (hold)                             ``POST /shop/api/reserve {"sku","buyer","count"}``
pay                                      ``POST /shop/api/checkout {"reservation"}``
cancel                                   ``POST /shop/api/release {"reservation"}``
read order                               ``GET /shop/api/reservation?id=``
counters                                 ``GET /shop/api/stock?sku=``
set the sale up (admin)                  ``POST /shop/api/admin/items {"sku","total","lock_seconds"}``
audit, profiles                          none
=======================================  ==========================================

Usage::

    locust -f locustfiles/flash_sale.py --host http://127.0.0.1:9000 --headless -u 20 -t 5s \\
        --oversold-adapter oversold.adapters.shop:ShopAdapter --oversold-setup-sale \\
        --oversold-admin-token secret
"""

from __future__ import annotations

import json
from typing import Any, Mapping
from urllib.parse import quote

from .base import Adapter, Request
from .outcome import Outcome, classify

#: shop code -> (contract error code, whether the operation surely did not happen)
CODES: dict[int, tuple[str, bool]] = {
    1001: ("sold_out", True),
    1002: ("hold_expired", True),
    1003: ("order_cancelled", True),
    1004: ("already_paid", True),
    1005: ("unknown_order", True),
    1006: ("idempotency_conflict", True),
    4000: ("bad_request", True),
    5000: ("unavailable", False),  # "system busy": it may or may not have happened
}
STATES = {"LOCKED": "held", "PAID": "paid", "RELEASED": "cancelled", "EXPIRED": "expired"}


class ShopAdapter(Adapter):
    """The example shop's API (``tests/shop_app.py``) in the contract's terms."""

    name = "shop"
    # the shop answers a repeated X-Request-Id with its first answer: a resent checkout pays once
    idempotent_pay = True

    def _admin(self) -> dict[str, str]:
        return {"X-Admin-Key": self.admin_token} if self.admin_token else {}

    def order(self, sale_id: str, user_id: str, qty: int, key: str) -> Request:
        return Request("POST", "/shop/api/reserve", {"sku": sale_id, "buyer": user_id, "count": qty},
                       {"X-Request-Id": key}, "order")

    def pay(self, sale_id: str, order_id: str, key: str) -> Request:
        return Request("POST", "/shop/api/checkout", {"reservation": order_id}, {"X-Request-Id": key}, "pay")

    def cancel(self, sale_id: str, order_id: str, key: str) -> Request:
        return Request("POST", "/shop/api/release", {"reservation": order_id}, {"X-Request-Id": key}, "cancel")

    def read_order(self, sale_id: str, order_id: str) -> Request:
        return Request("GET", f"/shop/api/reservation?id={quote(order_id, safe='')}", name="read order")

    def counters(self, sale_id: str) -> Request:
        return Request("GET", f"/shop/api/stock?sku={quote(sale_id, safe='')}", name="read sale")

    def setup_sale(self, sale_id: str, settings: Mapping[str, Any]) -> Request | None:
        body = {"sku": sale_id, "total": settings["stock"], "lock_seconds": settings["hold_ttl_ms"] / 1000.0}
        return Request("POST", "/shop/api/admin/items", body, self._admin(), "setup sale")

    # no audit(), no load_profiles(): the shop has neither

    def outcome(self, op: str, status: int, content: bytes | None, error: BaseException | None) -> Outcome:
        if status != 200 or not content:  # transport trouble, 401, 500: as the contract would judge them
            return Outcome(type=classify(status, error), status=status or 0, code=None, body=None, error=error)
        try:
            envelope = json.loads(content)
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("code"), int):
            return Outcome(type="info", status=status, code=None, body=None)  # not the shop talking
        code = envelope["code"]
        if code != 0:
            name, definite = CODES.get(code, (f"shop_{code}", False))
            return Outcome(type="fail" if definite else "info", status=status, code=name,
                           body={"error": {"code": name, "message": str(envelope.get("msg", ""))}})
        data = envelope.get("data")
        return Outcome(type="ok", status=status, code=None, body=_contract_body(op, data))


def _contract_body(op: str, data: Any) -> dict[str, Any] | None:
    if not isinstance(data, dict):
        return None
    if op == "counters":
        return {"stock": data.get("total"), "available": data.get("free"), "held": data.get("locked"),
                "sold": data.get("sold")}
    if "reservation" in data:
        return {"order_id": str(data["reservation"]), "user_id": data.get("buyer"), "qty": data.get("count"),
                "status": STATES.get(str(data.get("state")), str(data.get("state", "")).lower()),
                "expires_ms": data.get("lock_until")}
    return data
