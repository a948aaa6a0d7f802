"""Answers of order/pay/cancel, and the form they are stored in for idempotency.

A *result* is a small JSON object: ``{"s": 201, "o": {order}}`` on success or
``{"s": 409, "e": "sold_out", "m": "..."}`` on a refusal, with an optional
``"x": {...}`` of extra error fields (``refunded`` of a payment_deduct
payment). Under an idempotency key it is stored as
``fingerprint + "\\n" + json``, where the fingerprint names the request
(user and qty of an order, the order id of a pay or cancel), so a retry gets
the first answer back and a different request under the same key is told apart.
Lua scripts write the same form with ``cjson``.

Usage::

    reply = from_stored(b'5:alice\\n{"s":409,"e":"sold_out","m":"qty: ..."}', "5:alice")
    reply.status, reply.body   # 409, {"error": {"code": "sold_out", ...}}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .errors import ApiError, error_body

ORDER_FIELDS = ("order_id", "sale_id", "user_id", "qty", "status", "created_ms", "expires_ms", "paid_ms")


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: HTTP status and JSON body; ``keep`` says whether an idempotency key stores it."""

    status: int
    body: dict[str, Any]
    keep: bool = True


def order_body(order: dict[str, Any]) -> dict[str, Any]:
    """The contract's order object, fields in their documented order, times as ints."""
    out = {name: order.get(name) for name in ORDER_FIELDS}
    for name in ("qty", "created_ms", "expires_ms", "paid_ms"):
        if out[name] is not None:
            out[name] = int(out[name])  # cjson may write a whole number as a float
    return out


def order_from_hash(sale_id: str, order_id: str, fields: list[bytes | None]) -> dict[str, Any]:
    """An order from ``HMGET user_id qty status created_ms expires_ms paid_ms``."""
    user, qty, status, created, expires, paid = fields
    return {
        "order_id": order_id, "sale_id": sale_id, "user_id": (user or b"").decode(),
        "qty": int(qty or 0), "status": (status or b"").decode(),
        "created_ms": int(created or 0), "expires_ms": int(expires) if expires else None,  # None: never expires
        "paid_ms": int(paid) if paid else None,
    }


ORDER_HASH_FIELDS = ("user_id", "qty", "status", "created_ms", "expires_ms", "paid_ms")


def ok(status: int, order: dict[str, Any]) -> dict[str, Any]:
    return {"s": status, "o": order}


def refuse(status: int, code: str, message: str) -> dict[str, Any]:
    return {"s": status, "e": code, "m": message}


def to_reply(result: dict[str, Any], keep: bool = True) -> Reply:
    if "o" in result:
        return Reply(int(result["s"]), order_body(result["o"]), keep)
    body = error_body(result["e"], result["m"])
    if "x" in result:  # extra fields of an error, e.g. refunded / refund / compensation of a payment
        body["error"].update(result["x"])
    return Reply(int(result["s"]), body, keep)


def encode(fingerprint: str, result: dict[str, Any]) -> bytes:
    return fingerprint.encode() + b"\n" + orjson.dumps(result)


def from_stored(payload: bytes, fingerprint: str, keep: bool = True) -> Reply:
    """Decode a stored (or just made) result; a foreign fingerprint is a 422."""
    stored_fp, _, data = payload.partition(b"\n")
    if stored_fp.decode() != fingerprint:
        raise conflict()
    return to_reply(orjson.loads(data), keep)


def conflict() -> ApiError:
    return ApiError(
        422, "idempotency_conflict",
        "Idempotency-Key: already used for a different request on this sale and operation",
    )
