"""A sale's settings, as ``PUT /v1/sales/{id}`` takes them.

Usage::

    cfg = SaleConfig.from_body({"stock": 100, "hold_ttl_ms": 30000, "strategy": "pre_deduct"},
                               strategies=("naive", "pre_deduct"))
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from . import validate
from .policy import Profile, ScalperPolicy, profiles_from_body
from .webhook import webhook_url_field

PAY_AFTER_EXPIRY = ("refuse", "fresh_stock")


@dataclass(frozen=True, slots=True)
class SaleConfig:
    """Settings of one sale; ``per_user_limit`` 0 means no limit."""

    stock: int
    hold_ttl_ms: int
    strategy: str
    per_user_limit: int = 0
    pay_after_expiry: str = "refuse"
    # protections (README "Protections"): payment_deduct's refund switch and money,
    # inventory warnings, the scalper policy and the profiles it reads
    refunds: bool = True
    price_cents: int = 100
    coupon_cents: int = 500
    payment_delay_ms: int = 0
    warn_thresholds: tuple[int, ...] = ()
    warn_webhook_url: str | None = None
    scalper_policy: ScalperPolicy | None = None
    profiles: dict[str, Profile] = field(default_factory=dict)  # loaded with the sale, not a setting
    # asynchronous order mode (异步处理订单): orders are queued (202) and applied by order processors
    async_orders: bool = False
    # pre_deduct_buckets: stock split into this many buckets, each under its own hash tag (0: not bucketed)
    buckets: int = 0
    # set by a node with a warehouse ledger, not by the body: names this incarnation of the
    # sale in the ledger and on its sync events (reference_backend/warehouse.py)
    epoch: str = ""

    @classmethod
    def from_body(cls, body: dict[str, Any], *, strategies: Iterable[str]) -> "SaleConfig":
        """Validate a request body; the first bad field raises a 400 naming it."""
        return cls(
            stock=validate.int_field(body, "stock", minimum=0),
            hold_ttl_ms=validate.int_field(body, "hold_ttl_ms", minimum=1),
            strategy=validate.choice_field(body, "strategy", tuple(sorted(strategies))),
            per_user_limit=validate.int_field(body, "per_user_limit", minimum=0, default=0),
            pay_after_expiry=validate.choice_field(body, "pay_after_expiry", PAY_AFTER_EXPIRY, default="refuse"),
            refunds=validate.bool_field(body, "refunds", default=True),
            price_cents=validate.int_field(body, "price_cents", minimum=0, default=100),
            coupon_cents=validate.int_field(body, "coupon_cents", minimum=0, default=500),
            payment_delay_ms=_delay(body),
            warn_thresholds=validate.int_list_field(body, "warn_thresholds", minimum=0, max_items=16),
            warn_webhook_url=webhook_url_field(body),
            scalper_policy=(
                None if body.get("scalper_policy") is None else ScalperPolicy.from_body(body["scalper_policy"])
            ),
            profiles={} if body.get("profiles") is None else profiles_from_body(body["profiles"]),
            async_orders=validate.bool_field(body, "async_orders", default=False),
            buckets=_buckets(body),
        )

    def as_meta(self) -> dict[str, str | int]:
        """The settings as the sale's meta hash stores them (flat strings and ints)."""
        meta: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "profiles"}
        meta.update(
            refunds=int(self.refunds),
            async_orders=int(self.async_orders),
            warn_thresholds=",".join(str(t) for t in sorted(self.warn_thresholds, reverse=True)),
            warn_webhook_url=self.warn_webhook_url or "",
            # '' = no policy; Lua compares this exact text with what a node judged by
            scalper_policy=self.scalper_policy.encode() if self.scalper_policy else "",
        )
        return meta


BUCKETED = "pre_deduct_buckets"  # the strategy whose sales have buckets
DEFAULT_BUCKETS = 4
MAX_BUCKETS = 256


def _buckets(body: dict[str, Any]) -> int:
    """``buckets``: 1 to 256 for a pre_deduct_buckets sale (default 4); refused for any other."""
    if body.get("strategy") != BUCKETED:
        if "buckets" in body:
            raise validate.bad_request(f"buckets: only a {BUCKETED} sale has buckets, this one is "
                                       f"{body.get('strategy')}")
        return 0
    n = validate.int_field(body, "buckets", minimum=1, default=DEFAULT_BUCKETS)
    if n > MAX_BUCKETS:
        raise validate.bad_request(f"buckets: must be between 1 and {MAX_BUCKETS}, got {n}")
    return n


def _delay(body: dict[str, Any]) -> int:
    delay = validate.int_field(body, "payment_delay_ms", minimum=0, default=0)
    if delay > 60_000:
        raise validate.bad_request(f"payment_delay_ms: must be between 0 and 60000, got {delay}")
    return delay
