"""The node's own wall clock, which a harness may set off by an offset (a clock-skew fault).

The backend decides nothing by it: holds, expiry and payment times are Redis's
``TIME``, one clock for every node. It exists so that a fault can put one node's
clock off, as a host whose NTP broke would be, and a backend that (wrongly)
takes a hold's expiry from its node's clock shows it on one machine.

``python -m reference_backend --clock-file PATH`` puts the path into
``OVERSOLD_NODE_CLOCK_FILE`` (inherited by any worker process of the HTTP
server); the file holds the offset in milliseconds (an integer, may be
negative; empty or missing = 0). It is read again whenever it changes.

Usage::

    now = node_now_ms()        # time.time() in ms, plus the offset in the clock file
"""

from __future__ import annotations

import os
import time

CLOCK_FILE_ENV = "OVERSOLD_NODE_CLOCK_FILE"

_cache: dict[str, tuple[int, int]] = {}  # path -> (mtime_ns, offset_ms)


def offset_ms(path: str | None = None) -> int:
    """The offset in the clock file (0 without one, or when it holds no integer)."""
    path = path if path is not None else os.environ.get(CLOCK_FILE_ENV)
    if not path:
        return 0
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return 0
    cached = _cache.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
        value = int(text) if text else 0
    except (OSError, ValueError, UnicodeDecodeError):
        value = 0  # a half-written file: no offset until it is whole (its mtime changes again)
    _cache[path] = (mtime, value)
    return value


def node_now_ms() -> int:
    """This node's wall clock in milliseconds, with the clock file's offset."""
    return time.time_ns() // 1_000_000 + offset_ms()
