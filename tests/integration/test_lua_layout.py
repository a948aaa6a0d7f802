"""The Lua scripts compile on a real Redis, and the op prelude refuses another KEYS layout before any write.

The layout rules themselves are checked without Redis in tests/unit/test_lua_layout.py.
"""

from __future__ import annotations

import pytest
import redis

from reference_backend import lua


def test_every_script_compiles_and_the_op_prelude_refuses_another_layout(redis_url):
    client = redis.Redis.from_url(redis_url)
    try:
        for name in lua.scripts():
            client.script_load(lua.source(name))  # a syntax error would raise here
        release_like = client.register_script(lua.source("pre_deduct_cancel"))
        with pytest.raises(redis.ResponseError, match="op prelude: expects the 10 KEYS"):
            release_like(keys=["os:{x}:holds", "os:{x}:avail", "os:{x}:held", "os:{x}:users"],
                         args=["os:{x}:o:", 10])
        batch = client.register_script(lua.source("pre_deduct_order_batch"))
        with pytest.raises(redis.ResponseError, match="batch prelude: expects the 8 sale KEYS"):
            batch(keys=[f"os:{{x}}:k{i}" for i in range(10)], args=["pre_deduct", "x", "os:{x}:o:", "", "[]"])
        assert client.keys("*") == []  # refused before any write
    finally:
        client.close()
