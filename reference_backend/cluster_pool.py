"""A node's Redis client on a Redis Cluster: ``--redis-url redis+cluster://host:port[,host:port...]``.

The hosts are startup nodes (any one that answers is enough: the client asks it
for the slot map). The client is redis-py's own ``redis.asyncio.cluster.RedisCluster``;
every key of one sale carries the sale's hash tag, so each Lua script runs on
one slot, and a ``pre_deduct_buckets`` sale puts each bucket under its own tag,
so its buckets land on different slots and, with several shards, on different
primaries.

As ``Store.connect`` and the Sentinel client do, it never resends a command on
its own (``Retry(NoBackoff(), 0)``): a write whose reply was lost in a failover
may have been applied, and a blind resend could apply it twice. A command that
fails that way is a 503 (outcome unknown) and the client refreshes its slot map
for the next one, which then goes to whichever node took the shard over.

Usage::

    client = cluster_client("redis+cluster://127.0.0.1:7000,127.0.0.1:7001", max_connections=64, timeout_s=2.0)
    store = Store(client)
"""

from __future__ import annotations

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

SCHEME = "redis+cluster"


class ClusterURLError(ValueError):
    """A ``redis+cluster://`` URL that cannot be used; the message says what is wrong."""


def is_cluster_url(url: str) -> bool:
    return url.startswith(SCHEME + "://")


def parse_cluster_url(url: str) -> list[tuple[str, int]]:
    """The startup nodes of ``redis+cluster://host:port[,host:port...]`` (IPv6 in brackets)."""
    if not is_cluster_url(url):
        raise ClusterURLError(f"cluster URL {url!r}: scheme must be {SCHEME}://")
    rest = url[len(SCHEME) + 3:].rstrip("/")
    if not rest or "/" in rest or "?" in rest or "@" in rest:
        raise ClusterURLError(f"cluster URL {url!r}: expected {SCHEME}://host:port[,host:port...] "
                              f"(no path, options or credentials)")
    nodes = []
    for item in rest.split(","):
        host, _, port = item.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ClusterURLError(f"cluster URL {url!r}: expected host:port, got {item!r}")
        nodes.append((host, int(port)))
    return nodes


def cluster_client(url: str, *, max_connections: int, timeout_s: float) -> RedisCluster:
    """A ``RedisCluster`` on the cluster of ``url`` (``ClusterURLError`` on a bad URL)."""
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in parse_cluster_url(url)],
        max_connections=max_connections,  # per node
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        require_full_coverage=False,  # a shard without a primary fails its own keys only
    )
