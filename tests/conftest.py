"""Shared fixtures: real Redis servers and real backend processes on loopback."""

from __future__ import annotations

import pytest
import redis

from oversold.infra.redis_server import RedisServer


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


# --- reference backend nodes --------------------------------------------------

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture(scope="session")
def admin_token() -> str:
    return ADMIN_TOKEN


@pytest.fixture(scope="session")
def backend_nodes(redis_server, tmp_path_factory):
    """Two real reference backend nodes on the session's Redis (reaper every 50 ms)."""
    from oversold.orchestrate.nodes import start_nodes

    nodes = start_nodes(
        2, redis_server.url, admin_token=ADMIN_TOKEN, log_dir=tmp_path_factory.mktemp("nodes"),
        extra_args=("--reap-interval-ms", "50"),
    )
    yield nodes
    for node in nodes:
        node.stop()


@pytest.fixture
def backend(redis_url, backend_nodes):
    """The session's two nodes, over a Redis emptied for this test."""
    return backend_nodes
