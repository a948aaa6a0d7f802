"""Checks of single scenario fields: each returns None when the value is fine, else what is wrong.

Shared by the scenario file's parser and the CLI's overrides, so ``--seed`` is
checked exactly like ``seed:``.

Usage::

    problem = int_in(0, 10)(11)    # "must be an integer from 0 to 10"
"""

from __future__ import annotations

import re
from typing import Any, Callable
from urllib.parse import urlsplit

Check = Callable[[Any], "str | None"]
ADAPTER_SPEC = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


def int_in(lo: int, hi: int = 10**9) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            return f"must be an integer from {lo} to {hi}"
        return None

    return check


def number_in(lo: float, hi: float) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            return f"must be a number from {lo} to {hi}"
        return None

    return check


SEED_RANGE = int_in(0, 2**31 - 1)
DURATION_RANGE = number_in(1, 86_400)


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def one_of(options: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda v: None if v in options else f"must be one of {', '.join(options)}"


def redis_url(v: Any) -> str | None:
    if not isinstance(v, str) or not re.match(r"^(redis|rediss|redis\+sentinel)://", v):
        return "must be a Redis URL (redis://…, rediss://… or redis+sentinel://…)"
    return None


def http_url(v: Any) -> str | None:
    """A backend's base URL: ``http://host[:port][/prefix]`` (the harness's clients speak plain HTTP)."""
    parts = urlsplit(v) if isinstance(v, str) else None
    if parts is None or parts.scheme != "http" or not parts.hostname or parts.query or parts.fragment:
        return "must be an http://host[:port] URL of your backend"
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "must be an http://host[:port] URL of your backend (the port is not a number)"
    return None


def adapter_spec(v: Any) -> str | None:
    if v is None or isinstance(v, str) and ADAPTER_SPEC.match(v):
        return None
    return "must be 'package.module:ClassName' (an oversold.adapters.Adapter subclass)"


def warn_thresholds(v: Any) -> str | None:
    if (
        not isinstance(v, (list, tuple))
        or len(v) > 16
        or any(isinstance(x, bool) or not isinstance(x, int) or not 0 <= x <= 10**9 for x in v)
        or len(set(v)) != len(v)
    ):
        return "must be a list of at most 16 distinct integers from 0 to 1000000000"
    return None


def range_ms(v: Any) -> str | None:
    if (
        not isinstance(v, (list, tuple))
        or len(v) != 2
        or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in v)
        or v[0] > v[1]
    ):
        return "must be [low, high] milliseconds with 0 <= low <= high"
    return None
