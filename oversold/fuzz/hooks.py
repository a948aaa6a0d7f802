"""schemathesis hooks of ``oversold fuzz``, loaded by schemathesis itself (``hooks`` in the config).

A fuzzer draws few distinct values for a header and sends them again and
again: the same ``Idempotency-Key`` with another body is the documented 422
``idempotency_conflict``, which would then answer most well-formed orders,
payments and cancels and leave the logic behind them untested. So every
well-formed key is made unique to its request; a malformed one is kept, to be
refused with a 400. And a ``payment_delay_ms`` the backend would accept is
kept to at most 50 ms: a payment_deduct sale's every payment waits that long
(up to a minute), which would stretch a bounded run by minutes and test nothing
more.

Usage::

    # schemathesis.toml, as oversold.fuzz.run writes it
    hooks = "/path/to/oversold/fuzz/hooks.py"
"""

from __future__ import annotations

import itertools
import re
import secrets
from typing import Any

import schemathesis

KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}\Z")  # the contract's IdempotencyKey pattern
RUN = secrets.token_hex(6)  # keys of an earlier run against the same backend never collide
MAX_DELAY_MS = 50
_count = itertools.count(1)


def fresh_key(key: Any) -> Any:
    """A unique well-formed key in place of a well-formed ``key``; anything else unchanged."""
    if isinstance(key, str) and KEY.match(key):
        return f"fz.{RUN}.{next(_count)}"
    return key


def short_delay(body: Any) -> None:
    """A well-formed ``payment_delay_ms`` of a sale body, cut to ``MAX_DELAY_MS``; a malformed one kept."""
    if isinstance(body, dict):
        delay = body.get("payment_delay_ms")
        whole = isinstance(delay, (int, float)) and not isinstance(delay, bool) and float(delay).is_integer()
        if whole and MAX_DELAY_MS < delay <= 60_000:
            body["payment_delay_ms"] = MAX_DELAY_MS


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    headers = case.headers
    if headers:
        for name in list(headers):
            if name.lower() == "idempotency-key":
                headers[name] = fresh_key(headers[name])
    short_delay(case.body)
