"""Validation of every request field; each failure is a 400 naming the field.

Usage::

    qty = int_field(body, "qty", minimum=1)
    user_id = user_id_field(body)
"""

from __future__ import annotations

import re
from typing import Any

from .errors import bad_request

MAX_INT = 10**9  # larger numbers are refused: no sale needs them, and they stay exact in Lua doubles
SALE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
ORDER_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
IDEM_KEY_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}\Z")
# control characters are refused so that a user id can never break a stored
# idempotency fingerprint (which is newline-separated) or a log line
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def sale_id(value: str) -> str:
    if not SALE_ID_RE.match(value):
        raise bad_request("sale_id: must be 1-64 characters of A-Z a-z 0-9 _ -")
    return value


def order_id(value: str) -> str:
    if not ORDER_ID_RE.match(value):
        raise bad_request("order_id: must be 1-64 characters of A-Z a-z 0-9 _ -")
    return value


def idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not IDEM_KEY_RE.match(value):
        raise bad_request("Idempotency-Key: must be 1-128 characters of A-Z a-z 0-9 _ . : -")
    return value


def whole(value: Any) -> int | None:
    """``value`` as an int if it is a JSON integer, else None.

    JSON (and JSON Schema's ``integer``) does not tell ``2`` from ``2.0``: both are
    the number two, so an integral float is taken as its int. Booleans are not numbers.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def int_field(body: dict[str, Any], name: str, *, minimum: int, default: int | None = None) -> int:
    """An integer in [minimum, 10^9] (``2.0`` is 2); booleans and fractions are refused."""
    if name not in body:
        if default is None:
            raise bad_request(f"{name}: required")
        return default
    value = whole(body[name])
    if value is None:
        raise bad_request(f"{name}: must be an integer, got {type_name(body[name])}")
    if value < minimum or value > MAX_INT:
        raise bad_request(f"{name}: must be between {minimum} and {MAX_INT}, got {value}")
    return value


def choice_field(body: dict[str, Any], name: str, choices: tuple[str, ...], *, default: str | None = None) -> str:
    if name not in body:
        if default is None:
            raise bad_request(f"{name}: required (one of {', '.join(choices)})")
        return default
    value = body[name]
    if not isinstance(value, str):
        raise bad_request(f"{name}: must be a string, got {type_name(value)}")
    if value not in choices:
        raise bad_request(f"{name}: must be one of {', '.join(choices)}, got {value[:64]!r}")
    return value


def user_id_field(body: dict[str, Any]) -> str:
    if "user_id" not in body:
        raise bad_request("user_id: required")
    value = body["user_id"]
    if not isinstance(value, str):
        raise bad_request(f"user_id: must be a string, got {type_name(value)}")
    if not 1 <= len(value) <= 128:
        raise bad_request(f"user_id: must be 1-128 characters, got {len(value)}")
    if _CONTROL_RE.search(value):
        raise bad_request("user_id: must not contain control characters")
    return value


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def bool_field(body: dict[str, Any], name: str, *, default: bool) -> bool:
    if name not in body:
        return default
    value = body[name]
    if not isinstance(value, bool):
        raise bad_request(f"{name}: must be true or false, got {type_name(value)}")
    return value


def int_list_field(body: dict[str, Any], name: str, *, minimum: int, max_items: int) -> tuple[int, ...]:
    """A list of distinct integers in [minimum, 10^9] (``2.0`` is 2); missing or null is empty."""
    value = body.get(name)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise bad_request(f"{name}: must be an array of integers, got {type_name(value)}")
    if len(value) > max_items:
        raise bad_request(f"{name}: at most {max_items} items, got {len(value)}")
    seen: list[int] = []
    for i, raw in enumerate(value):
        item = whole(raw)
        if item is None:
            raise bad_request(f"{name}[{i}]: must be an integer, got {type_name(raw)}")
        if item < minimum or item > MAX_INT:
            raise bad_request(f"{name}[{i}]: must be between {minimum} and {MAX_INT}, got {item}")
        if item in seen:
            raise bad_request(f"{name}[{i}]: {item} is listed twice")
        seen.append(item)
    return tuple(seen)
