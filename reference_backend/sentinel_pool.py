"""A node's Redis client behind Sentinel: ``--redis-url redis+sentinel://...`` follows failovers.

The URL format is ``reference_backend.sentinel_url``'s (``redis+sentinel://host:port[,host:port...]/service[/db][?options]``).
The client comes from redis-py's own ``redis.asyncio.sentinel.Sentinel(...).master_for(...)``,
so after a failover new connections go to whatever primary the Sentinels name.

Two things differ from redis-py's defaults, on purpose, and match ``Store.connect``:

- retries are off (``Retry(NoBackoff(), 0)``): a write whose reply was lost in
  the failover may have been applied; a blind resend could apply it twice;
- the pool blocks for a free connection (up to the node's timeout) like the
  plain node's ``BlockingConnectionPool``, instead of failing at once when all
  ``max_connections`` are busy.

Usage::

    client = sentinel_client("redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/oversold",
                             max_connections=64, timeout_s=2.0)
    store = Store(client)
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.sentinel import Sentinel as SyncSentinel

from .sentinel_url import SCHEME, parse_sentinel_url

__all__ = ["SCHEME", "is_sentinel_url", "sentinel_client", "sync_client"]


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool (asks the Sentinels where the primary is) that waits for a free connection.

    The MRO runs ``SentinelConnectionPool.__init__`` (connection class, master
    lookup), then ``BlockingConnectionPool.__init__`` (``max_connections``,
    ``timeout``); ``get_connection`` is the blocking pool's.
    """


def is_sentinel_url(url: str) -> bool:
    return url.startswith(SCHEME + "://")


def sentinel_client(url: str, *, max_connections: int, timeout_s: float) -> aioredis.Redis:
    """A ``redis.asyncio.Redis`` on the primary the Sentinels of ``url`` name (``SentinelURLError`` on a bad URL)."""
    cfg = parse_sentinel_url(url)
    args = cfg.sentinel_args()
    # the node's own timeouts unless the URL sets them: a dead primary must not hang a request
    args.setdefault("socket_timeout", timeout_s)
    args.setdefault("socket_connect_timeout", timeout_s)
    sentinel_kwargs = dict(args.pop("sentinel_kwargs"))
    sentinel_kwargs.setdefault("socket_timeout", timeout_s)
    sentinel_kwargs.setdefault("socket_connect_timeout", timeout_s)
    sentinel = Sentinel(cfg.sentinels, sentinel_kwargs=sentinel_kwargs, **args)
    return sentinel.master_for(
        cfg.service_name,
        connection_pool_class=BlockingSentinelPool,
        max_connections=max_connections,
        timeout=timeout_s,  # waiting for a free connection longer than this is a 503
        retry=Retry(NoBackoff(), 0),
    )


def sync_client(url: str, *, timeout_s: float) -> redis.Redis:
    """A blocking ``redis.Redis`` for a ``redis://`` or ``redis+sentinel://`` URL (the sync worker's).

    Through Sentinel it is redis-py's ``redis.sentinel.Sentinel(...).master_for(...)``: a
    connection error makes the next command ask the Sentinels for the primary again.
    """
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    cfg = parse_sentinel_url(url)
    args = cfg.sentinel_args()
    args.setdefault("socket_timeout", timeout_s)
    args.setdefault("socket_connect_timeout", timeout_s)
    sentinel_kwargs = dict(args.pop("sentinel_kwargs"))
    sentinel_kwargs.setdefault("socket_timeout", timeout_s)
    sentinel_kwargs.setdefault("socket_connect_timeout", timeout_s)
    return SyncSentinel(cfg.sentinels, sentinel_kwargs=sentinel_kwargs, **args).master_for(cfg.service_name)
