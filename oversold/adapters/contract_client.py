"""A small synchronous client of the HTTP contract, stdlib only.

It uses ``http.client`` with one keep-alive connection per thread (per greenlet
under gevent's monkey-patching), so it works in plain threads, in pytest and
inside Locust processes alike. Every call returns ``(status, body)``; a request
that got no contract answer raises ``TransportError``, whose ``maybe_applied``
says whether the backend may have acted on it (the history's ``info``) or
surely did not (connection refused: ``fail``).

Usage::

    client = ContractClient("http://127.0.0.1:8001", admin_token="secret")
    client.put_sale("s1", stock=100, hold_ttl_ms=30_000, strategy="pre_deduct")
    status, order = client.order("s1", "alice", 1, key="alice-1")
    status, paid = client.pay("s1", order["order_id"], key="alice-1-pay")
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import quote

from oversold.errors import TransportError
from oversold.infra.keepalive import KeepAlive

Body = dict[str, Any]


class ContractClient:
    """Calls of the contract (docs/internals.md section 1) against one base URL."""

    def __init__(self, base_url: str, admin_token: str | None = None, timeout: float = 5.0) -> None:
        self._conn = KeepAlive(base_url, timeout)
        self.base_url = self._conn.base_url
        self.admin_token = admin_token

    # -- the contract ------------------------------------------------------

    def health(self) -> tuple[int, Body]:
        return self.request("GET", "/v1/health")

    def openapi(self) -> str:
        """The contract document the backend serves (YAML text)."""
        status, raw = self._exchange("GET", "/v1/openapi.yaml", None, {}, retry_safe=True)
        if status != 200:
            raise TransportError(f"GET /v1/openapi.yaml: status {status}", maybe_applied=False)
        return raw.decode()

    def put_sale(
        self, sale_id: str, *, stock: int, hold_ttl_ms: int, strategy: str,
        per_user_limit: int = 0, pay_after_expiry: str = "refuse", **settings: Any,
    ) -> tuple[int, Body]:
        """Create or reset a sale; ``settings`` are further fields of the body (``refunds``,
        ``warn_thresholds``, ``scalper_policy``, ``profiles``, ...), sent as given."""
        body = {"stock": stock, "hold_ttl_ms": hold_ttl_ms, "strategy": strategy,
                "per_user_limit": per_user_limit, "pay_after_expiry": pay_after_expiry, **settings}
        return self.request("PUT", f"/v1/sales/{_seg(sale_id)}", body, admin=True)

    def put_profiles(self, sale_id: str, profiles: dict[str, dict[str, Any]]) -> tuple[int, Body]:
        """Add or replace user profiles of a sale (admin), for its scalper policy."""
        return self.request("PUT", f"/v1/sales/{_seg(sale_id)}/profiles", {"profiles": profiles}, admin=True)

    def refund(self, sale_id: str, order_id: str, key: str | None = None) -> tuple[int, Body]:
        """Refund a paid order and compensate its buyer (admin)."""
        return self.request("POST", f"/v1/sales/{_seg(sale_id)}/orders/{_seg(order_id)}/refund", key=key,
                            admin=True)

    def sale(self, sale_id: str) -> tuple[int, Body]:
        return self.request("GET", f"/v1/sales/{_seg(sale_id)}")

    def audit(self, sale_id: str) -> tuple[int, Body]:
        return self.request("GET", f"/v1/sales/{_seg(sale_id)}/audit", admin=True)

    def order(self, sale_id: str, user_id: str, qty: int, key: str | None = None) -> tuple[int, Body]:
        return self.request("POST", f"/v1/sales/{_seg(sale_id)}/orders", {"user_id": user_id, "qty": qty}, key=key)

    def pay(self, sale_id: str, order_id: str, key: str | None = None) -> tuple[int, Body]:
        return self.request("POST", f"/v1/sales/{_seg(sale_id)}/orders/{_seg(order_id)}/pay", key=key)

    def cancel(self, sale_id: str, order_id: str, key: str | None = None) -> tuple[int, Body]:
        return self.request("POST", f"/v1/sales/{_seg(sale_id)}/orders/{_seg(order_id)}/cancel", key=key)

    def get_order(self, sale_id: str, order_id: str) -> tuple[int, Body]:
        return self.request("GET", f"/v1/sales/{_seg(sale_id)}/orders/{_seg(order_id)}")

    # -- plumbing ----------------------------------------------------------

    def request(
        self, method: str, path: str, body: Any = None, *, key: str | None = None, admin: bool = False,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Body]:
        """One request; ``body`` (if not None) is sent as JSON. Returns (status, JSON object)."""
        sent_headers = dict(headers or {})
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            sent_headers.setdefault("Content-Type", "application/json")
        if key is not None:
            sent_headers["Idempotency-Key"] = key
        if admin and self.admin_token is not None:
            sent_headers["Authorization"] = f"Bearer {self.admin_token}"
        # resending is harmless for reads, for PUT, and under an idempotency key
        retry_safe = method in ("GET", "PUT") or key is not None
        status, raw = self._exchange(method, path, payload, sent_headers, retry_safe=retry_safe)
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise TransportError(
                f"{method} {path}: status {status} without a JSON object: {raw[:200]!r}", maybe_applied=True
            )
        return status, parsed

    def close(self) -> None:
        self._conn.close()

    def _exchange(
        self, method: str, path: str, payload: bytes | None, headers: dict[str, str], *, retry_safe: bool
    ) -> tuple[int, bytes]:
        try:
            return self._conn.exchange(method, path, payload, headers, retry_safe=retry_safe)
        except ConnectionRefusedError as e:
            raise TransportError(f"{method} {path}: connection refused ({e})", maybe_applied=False) from e
        except (http.client.HTTPException, OSError) as e:
            timed_out = isinstance(e, (socket.timeout, TimeoutError))
            raise TransportError(
                f"{method} {path}: {'timed out' if timed_out else 'transport failure'} ({type(e).__name__}: {e})",
                maybe_applied=True,
            ) from e


def _seg(value: str) -> str:
    """One path segment, quoted so that any string stays one segment."""
    return quote(value, safe="")
