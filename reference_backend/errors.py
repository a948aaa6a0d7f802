"""Contract errors: an HTTP status, a stable code and a message naming the field.

Usage::

    raise ApiError(400, "bad_request", "qty: must be an integer >= 1")
"""

from __future__ import annotations

import asyncio

from redis import exceptions as rx

# Redis could not answer, or refused for a reason that heals (failover, loading,
# out of memory): the outcome is unknown to the client, hence 503 and nothing else;
# background loops wait such outages out. (BusyLoadingError is a ConnectionError.)
REDIS_DOWN = (
    rx.ConnectionError, rx.TimeoutError, rx.ReadOnlyError, rx.OutOfMemoryError,
    rx.ClusterDownError, rx.TryAgainError, OSError, asyncio.TimeoutError,
)


class ApiError(Exception):
    """An error answer of the contract; ``body()`` is its JSON shape."""

    def __init__(self, status: int, code: str, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers

    def body(self) -> dict:
        return error_body(self.code, self.message)


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


class StrategyMoved(Exception):
    """The sale was reset to another strategy since this node cached it; dispatch again."""

    def __init__(self, actual: str) -> None:
        super().__init__(actual)
        self.actual = actual
