"""The Sentinel failover topology (real processes) and its URL format (pure)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
import redis
from redis.sentinel import Sentinel

from oversold.chaos.sentinel import SentinelTopology, sentinel_url
from reference_backend.sentinel_url import SentinelURL, SentinelURLError, parse_sentinel_url

# ------------------------------------------------------------------ the URL


def test_url_round_trip_and_redis_py_arguments():
    url = sentinel_url(
        [("127.0.0.1", 26379), ("::1", 26380)], "oversold", db=2, password="p@ss:w/rd",
        socket_timeout=0.5, sentinel_password="sp",
    )
    assert url.startswith("redis+sentinel://:p%40ss%3Aw%2Frd@127.0.0.1:26379,[::1]:26380/oversold/2?")
    cfg = parse_sentinel_url(url)
    assert cfg == SentinelURL(
        (("127.0.0.1", 26379), ("::1", 26380)), "oversold", db=2, password="p@ss:w/rd",
        socket_timeout=0.5, sentinel_password="sp",
    )
    args = cfg.sentinel_args()
    assert args["sentinel_kwargs"] == {"socket_timeout": 0.5, "password": "sp"}
    assert args["password"] == "p@ss:w/rd" and args["db"] == 2
    Sentinel(cfg.sentinels, **args)  # redis-py accepts exactly these arguments (no I/O yet)


def test_url_minimal_form():
    cfg = parse_sentinel_url("redis+sentinel://127.0.0.1:1,127.0.0.1:2,127.0.0.1:3/oversold")
    assert cfg.sentinels == (("127.0.0.1", 1), ("127.0.0.1", 2), ("127.0.0.1", 3))
    assert cfg.service_name == "oversold" and cfg.db == 0 and cfg.password is None
    assert cfg.connection_kwargs() == {"db": 0}


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:26379/oversold",
        "redis+sentinel://127.0.0.1:26379",
        "redis+sentinel://127.0.0.1:26379/",
        "redis+sentinel://127.0.0.1/oversold",
        "redis+sentinel://127.0.0.1:99999/oversold",
        "redis+sentinel://127.0.0.1:26379/oversold/zero",
        "redis+sentinel://127.0.0.1:26379/oversold/0/extra",
        "redis+sentinel://127.0.0.1:26379/oversold?socket_timeout=fast",
        "redis+sentinel://127.0.0.1:26379/oversold?sockettimeout=1",
    ],
)
def test_bad_urls_are_refused_with_a_reason(url):
    with pytest.raises(SentinelURLError, match="sentinel URL"):
        parse_sentinel_url(url)


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
