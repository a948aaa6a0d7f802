"""Shared fixtures: real Redis servers and real backend processes on loopback."""

from __future__ import annotations

import pytest
import redis

from oversold.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer.start(log_dir=tmp_path_factory.mktemp("redis-log"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    """URL of the session's real Redis server, emptied before each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url
