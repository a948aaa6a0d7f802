"""The scalper policy (黄牛): a user's profile in, ``reject`` / ``limit N`` / ``allow`` out.

Pure: no Redis, no clock. The node evaluates it before an order's Lua step and
passes the verdict into that step, so a lowered limit is still checked in the
same atomic step as the deduction (parallel requests cannot pass it).

The article's scalper has almost no purchase history, almost no activity and a
membership opened just now. Each is one *signal*:

- ``no_history``: ``past_purchases <= few_purchases`` or ``account_age_days <= new_account_days``
  (an account days old cannot have a track record, whatever it says)
- ``inactive``: ``activity_score <= low_activity``
- ``new_member``: ``membership_age_days <= new_member_days``

All three → ``reject``; exactly two → ``limit suspect_limit``; fewer → ``allow``.
A user without a profile is allowed (a shop cannot refuse everyone it has not
profiled yet; load profiles before the sale to cover them).

Usage::

    policy = ScalperPolicy.from_body({"enabled": True})
    policy.verdict(Profile(account_age_days=1, past_purchases=0, activity_score=0.0, membership_age_days=0))
    # Verdict(action='reject', limit=0, signals=('no_history', 'inactive', 'new_member'))
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .errors import ApiError, bad_request
from .validate import MAX_INT, type_name, user_id_field, whole

Action = Literal["allow", "limit", "reject"]
MAX_PROFILES = 1000  # per request; a body is at most 16 KiB anyway


@dataclass(frozen=True, slots=True)
class Profile:
    """What the shop knows of one user."""

    account_age_days: int
    past_purchases: int
    activity_score: float  # 0..1
    membership_age_days: int

    def encode(self) -> str:
        """The compact form stored in the sale's ``profiles`` hash."""
        return f"{self.account_age_days},{self.past_purchases},{self.activity_score!r},{self.membership_age_days}"

    @classmethod
    def decode(cls, raw: bytes | str) -> "Profile":
        text = raw.decode() if isinstance(raw, bytes) else raw
        a, p, s, m = text.split(",")
        return cls(int(a), int(p), float(s), int(m))

    @classmethod
    def from_body(cls, body: Any, where: str) -> "Profile":
        if not isinstance(body, dict):
            raise bad_request(f"{where}: must be an object, got {type_name(body)}")
        return cls(
            account_age_days=_int(body, "account_age_days", where),
            past_purchases=_int(body, "past_purchases", where),
            activity_score=_score(body, "activity_score", where),
            membership_age_days=_int(body, "membership_age_days", where),
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    limit: int = 0  # for "limit": the user's units at most
    signals: tuple[str, ...] = ()

    def lua_arg(self) -> str:
        """ARGV[8] of an order script: '' allow, 'reject', or the lowered limit."""
        if self.action == "reject":
            return "reject"
        return str(self.limit) if self.action == "limit" else ""


ALLOW = Verdict("allow")


@dataclass(frozen=True, slots=True)
class ScalperPolicy:
    """Thresholds of the three signals; see the module docstring."""

    enabled: bool = True
    few_purchases: int = 1
    new_account_days: int = 30
    low_activity: float = 0.1
    new_member_days: int = 7
    suspect_limit: int = 1

    def verdict(self, profile: Profile | None) -> Verdict:
        if not self.enabled or profile is None:
            return ALLOW
        signals = tuple(
            name for name, on in (
                ("no_history", profile.past_purchases <= self.few_purchases
                 or profile.account_age_days <= self.new_account_days),
                ("inactive", profile.activity_score <= self.low_activity),
                ("new_member", profile.membership_age_days <= self.new_member_days),
            ) if on
        )
        if len(signals) == 3:
            return Verdict("reject", 0, signals)
        if len(signals) == 2:
            return Verdict("limit", self.suspect_limit, signals)
        return Verdict("allow", 0, signals)

    def encode(self) -> str:
        """Canonical JSON, stored in the sale's meta; nodes compare it to spot a stale cache."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: bytes | str) -> "ScalperPolicy | None":
        if not raw:
            return None
        return cls(**json.loads(raw))

    @classmethod
    def from_body(cls, body: Any, where: str = "scalper_policy") -> "ScalperPolicy":
        if not isinstance(body, dict):
            raise bad_request(f"{where}: must be an object, got {type_name(body)}")
        known = {"enabled", "few_purchases", "new_account_days", "low_activity", "new_member_days", "suspect_limit"}
        for name in body:
            if name not in known:
                raise bad_request(f"{where}.{name}: unknown field; known: {', '.join(sorted(known))}")
        d = cls()
        enabled = body.get("enabled", d.enabled)
        if not isinstance(enabled, bool):
            raise bad_request(f"{where}.enabled: must be true or false, got {type_name(enabled)}")
        return cls(
            enabled=enabled,
            few_purchases=_int(body, "few_purchases", where, d.few_purchases),
            new_account_days=_int(body, "new_account_days", where, d.new_account_days),
            low_activity=_score(body, "low_activity", where, d.low_activity),
            new_member_days=_int(body, "new_member_days", where, d.new_member_days),
            suspect_limit=_int(body, "suspect_limit", where, d.suspect_limit, minimum=1),
        )


def profiles_from_body(body: Any, where: str = "profiles") -> dict[str, Profile]:
    """``{"<user id>": {profile}, ...}`` validated; the first bad entry raises a 400 naming it."""
    if not isinstance(body, dict):
        raise bad_request(f"{where}: must be an object of user id -> profile, got {type_name(body)}")
    if len(body) > MAX_PROFILES:
        raise bad_request(f"{where}: at most {MAX_PROFILES} profiles per request, got {len(body)}")
    out: dict[str, Profile] = {}
    for uid, raw in body.items():
        try:
            user_id_field({"user_id": uid})
        except ApiError:
            raise bad_request(
                f"{where}: user id {uid[:64]!r} must be 1-128 characters without control characters"
            ) from None
        out[uid] = Profile.from_body(raw, f"{where}.{uid}")
    return out


def _int(body: dict[str, Any], name: str, where: str, default: int | None = None, *, minimum: int = 0) -> int:
    if name not in body:
        if default is None:
            raise bad_request(f"{where}.{name}: required")
        return default
    v = whole(body[name])
    if v is None:
        raise bad_request(f"{where}.{name}: must be an integer, got {type_name(body[name])}")
    if not minimum <= v <= MAX_INT:
        raise bad_request(f"{where}.{name}: must be between {minimum} and {MAX_INT}, got {v}")
    return v


def _score(body: dict[str, Any], name: str, where: str, default: float | None = None) -> float:
    if name not in body:
        if default is None:
            raise bad_request(f"{where}.{name}: required")
        return default
    v = body[name]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise bad_request(f"{where}.{name}: must be a number from 0 to 1, got {type_name(v)}")
    if not 0 <= v <= 1:
        raise bad_request(f"{where}.{name}: must be a number from 0 to 1, got {v}")
    return float(v)


class PolicyCache:
    """Per node: each sale's scalper policy as last seen (raw text and parsed).

    Saves reading the policy on every order. It may go stale when the sale is
    reset through another node; the order script compares the raw text with
    the sale's own and hands back the real one, so a stale entry costs one
    retry and never a wrong verdict.
    """

    def __init__(self) -> None:
        self._by_sale: dict[str, tuple[str, ScalperPolicy | None]] = {}

    def get(self, sale_id: str) -> tuple[str, ScalperPolicy | None]:
        return self._by_sale.get(sale_id, ("", None))

    def put(self, sale_id: str, raw: str) -> None:
        self._by_sale[sale_id] = (raw, ScalperPolicy.decode(raw))
