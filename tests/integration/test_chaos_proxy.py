"""The fault proxy against a real Redis: each toxic, its removal, and RESP pairing.

Timing checks assert lower bounds only (a toxic can only make things slower);
an upper bound appears only where it separates "the toxic is gone" from "the
toxic is still there" by a wide margin.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from backend_util import wait_for
from redis.backoff import NoBackoff
from redis.retry import Retry

from oversold.chaos.proxy import FaultProxy, ProxyClient, ProxyControlError, listen_port

# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fault_proxy(tmp_path_factory) -> Iterator[FaultProxy]:
    fp = FaultProxy.start(log_dir=tmp_path_factory.mktemp("fault-proxy"), seed=1)
    yield fp
    fp.stop()


@dataclass
class Through:
    name: str
    port: int
    client: ProxyClient


def _make_proxy(fault_proxy: FaultProxy, upstream_port: int) -> Through:
    name = f"p-{uuid.uuid4().hex[:8]}"
    created = fault_proxy.client.create(name, upstream=f"127.0.0.1:{upstream_port}")
    return Through(name, listen_port(created), fault_proxy.client)


@pytest.fixture
def proxy(fault_proxy, redis_server, redis_url) -> Iterator[Through]:
    through = _make_proxy(fault_proxy, redis_server.port)
    yield through
    fault_proxy.client.reset()
    fault_proxy.client.delete(through.name)


@pytest.fixture
def direct(redis_server, redis_url) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def client_at(port: int, timeout: float = 2.0) -> redis.Redis:
    """redis-py without retries: a retried timeout would hide the fault (and re-run a write)."""
    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def timed(fn, *args):
    start = time.monotonic()
    result = fn(*args)
    return result, time.monotonic() - start


def resp(*args: str | bytes) -> bytes:
    """One RESP2 multibulk command, as clients send them."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def read_until_quiet(sock: socket.socket, quiet: float) -> bytes:
    """Everything that arrives until ``quiet`` seconds pass without a byte."""
    sock.settimeout(quiet)
    out = bytearray()
    while True:
        try:
            data = sock.recv(1 << 16)
        except TimeoutError:
            return bytes(out)
        if not data:
            return bytes(out)
        out += data


# ------------------------------------------------------ the RESP scanner (pure)


# ------------------------------------------------------------ passthrough


def test_passthrough_small_big_and_pipelined(proxy, direct):
    r = client_at(proxy.port)
    big = b"\r\n*1\r\n" + bytes(range(256)) * 8192  # 2 MB that contains RESP-looking bytes
    assert r.set("big", big)
    assert r.get("big") == big
    assert direct.get("big") == big
    pipe = r.pipeline(transaction=False)
    for i in range(500):
        pipe.set(f"k{i}", i)
        pipe.get(f"k{i}")
    results = pipe.execute()
    assert results[1::2] == [str(i).encode() for i in range(500)]
    assert proxy.client.get(proxy.name)["connections"] == 1
    r.close()


# ---------------------------------------------------------------- latency


def test_latency_delays_each_reply_on_open_and_new_connections(proxy):
    r = client_at(proxy.port)
    r.ping()  # opened before the toxic: toxics apply to live connections too
    proxy.client.add_toxic(proxy.name, "latency", latency=300)
    for _ in range(3):
        _, elapsed = timed(r.ping)
        assert elapsed >= 0.29
    fresh = client_at(proxy.port)
    _, elapsed = timed(fresh.ping)
    assert elapsed >= 0.29
    r.close()
    fresh.close()


def test_latency_with_jitter_and_upstream_stream(proxy):
    r = client_at(proxy.port)
    r.ping()
    proxy.client.add_toxic(proxy.name, "latency", latency=200, jitter=100)
    proxy.client.add_toxic(proxy.name, "latency", stream="upstream", latency=150)
    for _ in range(3):
        _, elapsed = timed(r.ping)
        assert elapsed >= 0.1 + 0.15 - 0.01  # at least (latency - jitter) + upstream latency
    r.close()


# ------------------------------------------------------- down / enabled=false


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("how", ["enabled_false", "down_toxic"])
def test_down_refuses_new_and_cuts_open_connections(proxy, how):
    r = client_at(proxy.port)
    assert r.ping()
    if how == "enabled_false":
        proxy.client.disable(proxy.name)
    else:
        proxy.client.add_toxic(proxy.name, "down")
    assert refused(proxy.port)
    with pytest.raises(redis.ConnectionError):
        r.ping()
    if how == "enabled_false":
        proxy.client.enable(proxy.name)
    else:
        proxy.client.remove_toxic(proxy.name, "down_downstream")
    assert client_at(proxy.port).ping()  # same address as before
    assert r.ping()  # redis-py reconnects on the next command


# ---------------------------------------------------------------- timeout


def test_timeout_zero_blackholes_until_removed(proxy, direct):
    proxy.client.add_toxic(proxy.name, "timeout", timeout=0)
    r = client_at(proxy.port, timeout=0.5)
    with pytest.raises(redis.TimeoutError):
        r.ping()  # accepted, never answered
    proxy.client.remove_toxic(proxy.name, "timeout_downstream")
    assert client_at(proxy.port).ping()


def test_timeout_upstream_keeps_commands_from_redis(proxy, direct):
    r = client_at(proxy.port, timeout=0.5)
    r.client_setname("blackholed")  # how Redis names the proxy's upstream connection of this client
    proxy.client.add_toxic(proxy.name, "timeout", stream="upstream", timeout=0)
    with pytest.raises(redis.TimeoutError):
        r.execute_command("INCR", "n")
    r.close()
    # The client hung up, so the proxy closes the link; once Redis has dropped that connection it
    # has run every command that ever reached it on it.
    assert wait_for(lambda: proxy.client.get(proxy.name)["connections"] == 0)
    assert wait_for(lambda: "blackholed" not in {c["name"] for c in direct.client_list()})
    assert direct.get("n") is None  # dropped before Redis: nothing happened


def test_timeout_with_a_duration_closes_the_connection(proxy):
    proxy.client.add_toxic(proxy.name, "timeout", timeout=300)
    r = client_at(proxy.port, timeout=5)
    start = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        r.ping()  # closed by the proxy, not a client-side timeout
    assert 0.29 <= time.monotonic() - start < 4.5


# ------------------------------------------------------------- reset_peer


def test_reset_peer_sends_a_tcp_reset(proxy):
    proxy.client.add_toxic(proxy.name, "reset_peer", timeout=0)
    # A FIN would make recv() return b""; only a RST raises: in connect() when it beats
    # the client's own wake-up (loopback is that fast), else in send() or recv().
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as sock:
            sock.sendall(resp("PING"))
            sock.recv(100)


def test_reset_peer_after_timeout_lets_traffic_through_first(proxy):
    proxy.client.add_toxic(proxy.name, "reset_peer", timeout=400)
    # A raw socket: redis-py's pool would quietly replace a reset idle connection.
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as sock:
        sock.sendall(resp("PING"))
        assert sock.recv(100) == b"+PONG\r\n"
        assert wait_for(lambda: proxy.client.get(proxy.name)["connections"] == 0)  # the proxy reset the link
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            sock.sendall(resp("PING"))
            sock.recv(100)


# -------------------------------------------------------------- bandwidth


def test_bandwidth_slows_a_large_value(proxy, direct):
    value = b"v" * 300_000
    direct.set("big", value)
    r = client_at(proxy.port, timeout=10)
    r.ping()
    proxy.client.add_toxic(proxy.name, "bandwidth", rate=300)  # 300 KB/s: about 1 s for 300 KB
    got, elapsed = timed(r.get, "big")
    assert got == value
    assert elapsed >= 0.85


# ------------------------------------------------------- redis_drop_reply


def test_drop_reply_incr_runs_but_the_client_times_out(proxy, direct):
    r = client_at(proxy.port, timeout=0.5)
    r.ping()
    proxy.client.add_toxic(proxy.name, "redis_drop_reply", commands=["INCR"])
    with pytest.raises(redis.TimeoutError):
        r.execute_command("INCR", "n")  # redis-py's r.incr() sends INCRBY, which would not match
    assert direct.get("n") == b"1"
    other = client_at(proxy.port)
    assert other.get("n") == b"1"  # commands not in the list are answered
    assert other.incrby("n", 1) == 2


def test_drop_reply_eval_write_happened(proxy, direct):
    r = client_at(proxy.port, timeout=0.5)
    proxy.client.add_toxic(proxy.name, "redis_drop_reply", commands=["EVAL", "EVALSHA", "FCALL"])
    with pytest.raises(redis.TimeoutError):
        r.eval("return redis.call('INCRBY', KEYS[1], ARGV[1])", 1, "stock", 5)
    assert direct.get("stock") == b"5"


def test_drop_reply_pipeline_is_cut_exactly_at_the_dropped_reply(proxy, direct, redis_server):
    big = b"x\r\n$3\r\n" * 60_000  # 420 KB: the reply spans many reads
    direct.set("big", big)
    direct.rpush("list", "a", "b\r\n", "c")
    direct.hset("h", mapping={"f": "1", "g": "2"})
    before = [
        resp("GET", "big"),
        resp("LRANGE", "list", "0", "-1"),
        resp("HGETALL", "h"),
        resp("EVAL", "return {1, {2, {'x', {}}}, redis.status_reply('OK')}", "0"),
        resp("GET", "missing"),
        resp("NOSUCHCOMMAND"),
        b"PING\r\n",  # inline
        resp("ECHO", "*2\r\n:1\r\n"),
    ]
    after = [resp("INCR", "n"), resp("SET", "after", "1"), resp("PING")]
    with socket.create_connection(("127.0.0.1", redis_server.port)) as sock:
        sock.sendall(b"".join(before))
        expected = read_until_quiet(sock, 0.5)
    assert expected.startswith(b"$420000\r\n")

    proxy.client.add_toxic(proxy.name, "redis_drop_reply", commands=["INCR"])
    pipeline = b"".join(before + after)
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(pipeline), 7):  # small writes split commands everywhere
            sock.sendall(pipeline[i : i + 7])
        got = read_until_quiet(sock, 1.0)
    assert got == expected  # every reply before INCR, none from INCR on
    assert direct.get("n") == b"1"  # INCR ran
    assert direct.get("after") == b"1"  # and so did what followed it


def test_drop_reply_in_a_redis_py_pipeline_and_transaction(proxy, direct):
    r = client_at(proxy.port, timeout=0.5)
    proxy.client.add_toxic(proxy.name, "redis_drop_reply", commands=["EVALSHA"])
    pipe = r.pipeline(transaction=False)  # no matching command: every reply is paired and kept
    for i in range(300):
        pipe.set(f"k{i}", "v" * i)
        pipe.lrange("nothing", 0, -1)
        pipe.execute_command("INCR", "n")
    results = pipe.execute()
    assert results[2::3] == list(range(1, 301))
    proxy.client.remove_toxic(proxy.name, "redis_drop_reply_downstream")

    proxy.client.add_toxic(proxy.name, "redis_drop_reply", commands=["EXEC"])
    tx = client_at(proxy.port, timeout=0.5).pipeline(transaction=True)
    tx.incrby("m", 3)
    tx.set("done", "yes")
    with pytest.raises(redis.TimeoutError):
        tx.execute()
    assert direct.get("m") == b"3" and direct.get("done") == b"yes"


def test_drop_reply_timeout_closes_the_connection_after_the_drop(proxy, direct):
    proxy.client.add_toxic(proxy.name, "redis_drop_reply", commands=["INCR"], timeout=300)
    r = client_at(proxy.port, timeout=5)
    r.ping()
    start = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        r.execute_command("INCR", "n")  # closed by the proxy well before the 5 s client timeout
    assert time.monotonic() - start >= 0.29
    assert direct.get("n") == b"1"


def test_drop_reply_toxicity_and_probability_zero_drop_nothing(proxy):
    proxy.client.add_toxic(proxy.name, "redis_drop_reply", name="never", toxicity=0.0)
    proxy.client.add_toxic(proxy.name, "redis_drop_reply", name="no-command", probability=0.0)
    r = client_at(proxy.port, timeout=0.5)
    for _ in range(20):
        assert r.execute_command("INCR", "n")


# ------------------------------------------------------ healing, isolation


def test_remove_and_reset_restore_passthrough(proxy):
    proxy.client.add_toxic(proxy.name, "latency", latency=1000)
    proxy.client.add_toxic(proxy.name, "timeout", stream="upstream", timeout=0)
    proxy.client.add_toxic(proxy.name, "redis_drop_reply")
    proxy.client.remove_toxic(proxy.name, "timeout_upstream")
    assert [t["name"] for t in proxy.client.toxics(proxy.name)] == ["latency_downstream", "redis_drop_reply_downstream"]
    proxy.client.disable(proxy.name)

    proxy.client.reset()
    assert proxy.client.toxics(proxy.name) == []
    assert proxy.client.get(proxy.name)["enabled"] is True
    # A 1 s latency or a dropped reply would not fit in this 0.5 s timeout.
    assert client_at(proxy.port, timeout=0.5).ping()


def test_toxics_on_one_proxy_leave_another_alone(fault_proxy, proxy, redis_server):
    other = _make_proxy(fault_proxy, redis_server.port)
    try:
        fault_proxy.client.add_toxic(other.name, "timeout", timeout=0)
        fault_proxy.client.add_toxic(other.name, "latency", stream="upstream", latency=2000)
        assert client_at(proxy.port, timeout=0.5).set("a", "1")
        with pytest.raises(redis.TimeoutError):
            client_at(other.port, timeout=0.5).get("a")
    finally:
        fault_proxy.client.delete(other.name)
    assert refused(other.port)  # a deleted proxy stops listening


# ------------------------------------------------------------ control API


def test_control_api_rejects_bad_requests(fault_proxy, proxy):
    c = fault_proxy.client
    cases = [
        (400, lambda: c.add_toxic(proxy.name, "slow_dance")),
        (400, lambda: c.add_toxic(proxy.name, "latency", latncy=10)),
        (400, lambda: c.add_toxic(proxy.name, "latency", latency=-1)),
        (400, lambda: c.add_toxic(proxy.name, "latency", stream="sideways")),
        (400, lambda: c.add_toxic(proxy.name, "timeout", toxicity=1.5)),
        (400, lambda: c.add_toxic(proxy.name, "down", toxicity=0.5)),
        (400, lambda: c.add_toxic(proxy.name, "redis_drop_reply", commands="EVAL")),
        (404, lambda: c.add_toxic("no-such-proxy", "latency")),
        (404, lambda: c.remove_toxic(proxy.name, "no-such-toxic")),
        (409, lambda: c.create(proxy.name, upstream="127.0.0.1:1")),
        (400, lambda: c.create("elsewhere", upstream="127.0.0.1:1", listen="10.1.2.3:0")),
        (400, lambda: c.create("bad-upstream", upstream="nowhere")),
    ]
    for status, call in cases:
        with pytest.raises(ProxyControlError) as err:
            call()
        assert err.value.status == status, err.value
    c.add_toxic(proxy.name, "latency", latency=1)
    with pytest.raises(ProxyControlError) as err:
        c.add_toxic(proxy.name, "latency", latency=2)
    assert err.value.status == 409
    updated = c.update_toxic(proxy.name, "latency_downstream", latency=5, toxicity=0.5)
    assert updated["attributes"] == {"latency": 5, "jitter": 0} and updated["toxicity"] == 0.5
    assert set(c.proxies()) >= {proxy.name}


def test_fault_proxy_stop_leaves_no_process(tmp_path):
    fp = FaultProxy.start(log_dir=tmp_path)
    pid = fp.child.pid
    assert fp.client.version()["version"].startswith("oversold-fault-proxy")
    fp.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "stopped" in (tmp_path / "fault-proxy.log").read_text()
