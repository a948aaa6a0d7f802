"""How one request to the backend ended: ``ok``, ``fail`` or ``info``, with status, code and body.

Completions are classified as in docs/internals.md section 3 (``classify``,
and ``outcome_of`` for a whole response): 2xx ``ok``; 4xx ``fail``; connection
refused ``fail`` (nothing was sent); 5xx, timeouts, resets and anything else
``info`` (the operation may or may not have happened). Pure: unit-tested
without a server.

Usage::

    o = outcome_of(409, b'{"error": {"code": "sold_out", "message": "..."}}', None)
    (o.type, o.status, o.code)        # ("fail", 409, "sold_out")
"""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass
from typing import Any

from oversold.model.history import OpType

# Raised (or wrapped) by geventhttpclient when the peer refused the connection:
# the request never left this machine, so it definitely did not happen.
_REFUSED_ERRNOS = {errno.ECONNREFUSED}


def classify(status: int | None, error: BaseException | None = None) -> OpType:
    """The completion type of a request that got ``status`` (0/None: no response) or ``error``.

    >>> classify(201), classify(409), classify(503), classify(0, ConnectionRefusedError())
    ('ok', 'fail', 'info', 'fail')
    """
    if status:
        if 200 <= status < 300:
            return "ok"
        if 400 <= status < 500:
            return "fail"
        return "info"  # 5xx (503 = unknown outcome by contract), and 1xx/3xx we never expect
    if error is not None and refused(error):
        return "fail"
    # a timeout or a reset may strike after the server applied the request; a
    # connect timeout cannot be told apart from a read timeout here, so it is
    # unknown too (info only widens what the checker accepts, a wrong fail would
    # turn into a false alarm)
    return "info"


def refused(error: BaseException) -> bool:
    """Whether ``error`` is (or wraps) a refused connection: nothing was sent, nobody listens."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:  # geventhttpclient wraps as RetriesExceeded(original=...)
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) in _REFUSED_ERRNOS:
            return True
        # only explicit wrapping: an unrelated exception in __context__ must not turn unknown into fail
        e = getattr(e, "original", None) or e.__cause__
    return False


# Business answers of a healthy sale under load: recorded as ``fail`` in the
# history (they did not happen) but not Locust failures (nothing is broken).
EXPECTED_CODES = frozenset({
    "sold_out", "limit_exceeded", "hold_expired", "order_cancelled", "already_paid", "risk_rejected",
    "order_refunded", "not_refundable", "not_in_transit",  # the refusals the races of the admin and mind changers meet
})


@dataclass(frozen=True)
class Outcome:
    """How one operation ended: history type, HTTP status (0: no response), error code, body."""

    type: OpType
    status: int
    code: str | None
    body: dict[str, Any] | None
    error: BaseException | None = None

    @property
    def order_id(self) -> str | None:
        if self.body is None:
            return None
        oid = self.body.get("order_id")
        return str(oid) if oid is not None else None

    def locust_failure(self) -> str | None:
        """Why Locust should count this request as failed, or None for success."""
        if self.type == "ok":
            return None
        if self.status and self.code in EXPECTED_CODES:
            return None
        if self.status:
            return f"HTTP {self.status} {self.code or ''}".rstrip()
        return f"{type(self.error).__name__}: {self.error}" if self.error else "no response"


def outcome_of(status: int, content: bytes | None, error: BaseException | None) -> Outcome:
    """Classify a response (or its absence); pure, so it is unit-tested without a server."""
    body: dict[str, Any] | None = None
    code: str | None = None
    if status and content:
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            body = parsed
            err = parsed.get("error")
            if isinstance(err, dict) and isinstance(err.get("code"), str):
                code = err["code"]
    return Outcome(type=classify(status, error), status=status or 0, code=code, body=body, error=error)
