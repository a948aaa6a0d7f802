"""A sale's settings, as ``PUT /v1/sales/{id}`` takes them.

Usage::

    cfg = SaleConfig.from_body({"stock": 100, "hold_ttl_ms": 30000, "strategy": "pre_deduct"},
                               strategies=("naive", "pre_deduct"))
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from . import validate

PAY_AFTER_EXPIRY = ("refuse", "fresh_stock")


@dataclass(frozen=True, slots=True)
class SaleConfig:
    """Settings of one sale; ``per_user_limit`` 0 means no limit."""

    stock: int
    hold_ttl_ms: int
    strategy: str
    per_user_limit: int = 0
    pay_after_expiry: str = "refuse"

    @classmethod
    def from_body(cls, body: dict[str, Any], *, strategies: Iterable[str]) -> "SaleConfig":
        """Validate a request body; the first bad field raises a 400 naming it."""
        return cls(
            stock=validate.int_field(body, "stock", minimum=0),
            hold_ttl_ms=validate.int_field(body, "hold_ttl_ms", minimum=1),
            strategy=validate.choice_field(body, "strategy", tuple(sorted(strategies))),
            per_user_limit=validate.int_field(body, "per_user_limit", minimum=0, default=0),
            pay_after_expiry=validate.choice_field(body, "pay_after_expiry", PAY_AFTER_EXPIRY, default="refuse"),
        )

    def as_meta(self) -> dict[str, str | int]:
        return asdict(self)
