"""One command to one Redis process, for the topologies that watch their own nodes (Sentinel, Cluster).

No retries and short timeouts: a topology asks, notes who did not answer
(``None``), and moves on.

Usage::

    role = ask(("127.0.0.1", 6379), "ROLE")        # ['master', 0, []], or None if it does not answer
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

Address = tuple[str, int]


def client(addr: Address, timeout: float = 0.5) -> redis.Redis:
    return redis.Redis(host=addr[0], port=addr[1], socket_timeout=timeout, socket_connect_timeout=timeout,
                       retry=Retry(NoBackoff(), 0), decode_responses=True)


def ask(addr: Address, *command: Any, timeout: float = 0.5) -> Any:
    """One command to one node; None if it does not answer (or refuses)."""
    c = client(addr, timeout)
    try:
        return c.execute_command(*command)
    except redis.RedisError:
        return None
    finally:
        c.close()
