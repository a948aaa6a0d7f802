"""The Sentinel failover topology (real processes) and its URL format (pure)."""

from __future__ import annotations

import pytest
from redis.sentinel import Sentinel

from oversold.chaos.sentinel import sentinel_url
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


