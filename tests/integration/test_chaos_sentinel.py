"""The Sentinel failover topology (real processes) and its URL format (pure)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
import redis
from redis.sentinel import Sentinel

from oversold.chaos.sentinel import SentinelTopology
from reference_backend.sentinel_url import parse_sentinel_url

# ------------------------------------------------------------------ the URL


# ------------------------------------------------------------- the topology


def write_until_accepted(client: redis.Redis, key: str, value: str, timeout: float) -> None:
    """Retry while redis-py's Sentinel pool notices the old primary is gone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            assert client.set(key, value)
            return
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


async def async_write(url: str, key: str, value: str) -> bytes | None:
    """What the reference backend does: redis.asyncio Sentinel from the URL."""
    from redis.asyncio.sentinel import Sentinel as AsyncSentinel

    cfg = parse_sentinel_url(url)
    sentinel = AsyncSentinel(cfg.sentinels, **cfg.sentinel_args())
    master = sentinel.master_for(cfg.service_name)
    try:
        await master.set(key, value)
        return await master.get(key)
    finally:
        await master.aclose()
        await sentinel.aclose()


def test_failover_topology(tmp_path):
    start = time.monotonic()
    topo = SentinelTopology.start(log_dir=tmp_path, master_name="oversold")
    try:
        assert len(topo.sentinels) == 3 and all(h == "127.0.0.1" for h, _ in topo.sentinels)
        url = topo.url
        assert url.startswith("redis+sentinel://127.0.0.1:") and url.endswith("/oversold")
        cfg = parse_sentinel_url(url + "?socket_timeout=0.5")
        sentinel = Sentinel(cfg.sentinels, **cfg.sentinel_args())
        master = sentinel.master_for(cfg.service_name)

        first = topo.primary()
        assert sentinel.discover_master("oversold") == first
        assert topo.role(first) == "master"
        assert master.set("before", "1")
        assert master.wait(1, 2000) == 1  # on the replica too, so the failover keeps it
        assert asyncio.run(async_write(url, "async-before", "1")) == b"1"

        old = topo.kill_primary()
        assert old.addr == first and not old.alive()
        new = topo.wait_failover(timeout=20)
        assert new != first and topo.role(new) == "master"

        write_until_accepted(master, "after", "2", timeout=10)
        assert sentinel.discover_master("oversold") == new
        on_new = redis.Redis(host=new[0], port=new[1], socket_timeout=2)
        assert on_new.get("before") == b"1" and on_new.get("after") == b"2"
        on_new.close()
        assert asyncio.run(async_write(url, "async-after", "2")) == b"2"

        back = topo.restart(old)
        assert back.alive() and topo.role(back.addr) == "slave"
        assert topo.primary() == new
        master.close()
        sentinel.close()
    finally:
        topo.stop()
    for pid in topo.pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not topo.workdir.exists()
    assert time.monotonic() - start < 30
