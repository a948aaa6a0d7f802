"""Backend nodes as processes (oversold.orchestrate.nodes) and the stdlib contract client (oversold.adapters.contract_client)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from oversold.adapters.contract_client import ContractClient, TransportError
from oversold.errors import BackendUnavailable
from oversold.infra.procs import Child, free_port, port_open, wait_for_port
from oversold.orchestrate.nodes import BackendNode, start_nodes


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_start_nodes_then_kill_exactly_one(redis_url, tmp_path, admin_token):
    nodes = start_nodes(2, redis_url, admin_token=admin_token, log_dir=tmp_path, name_prefix="k")
    try:
        assert [n.name for n in nodes] == ["k-1", "k-2"] and nodes[0].port != nodes[1].port
        for node in nodes:
            status, body = node.client().health()
            assert (status, body["status"], body["node"]) == (200, "ok", node.name)
            assert set(body["rounds"]) == {"reaper", "monitor", "webhook"}
            assert children_of(node.child.pid) == []  # one process: nothing to orphan
        os.kill(nodes[0].child.pid, signal.SIGKILL)
        nodes[0].child.popen.wait(5)
        assert not port_open(nodes[0].port)
        assert nodes[1].client().health()[0] == 200
    finally:
        for node in nodes:
            node.stop()
    assert not any(node.alive() for node in nodes)


def test_sigterm_stops_a_node_cleanly(redis_url, tmp_path, admin_token):
    node = BackendNode.start(redis_url, name="t", admin_token=admin_token, log_dir=tmp_path)
    node.child.signal(signal.SIGTERM)
    rc = node.child.popen.wait(10)
    assert rc == 0 and "node t stopped" in node.log_tail(), (rc, node.log_tail())
    assert not port_open(node.port)


def test_health_shows_the_node_clock_with_its_clock_file_offset(redis_url, tmp_path, admin_token):
    """clock_ms is the node's own clock: off by what its --clock-file says, read again when it changes."""
    import time

    clock_file = tmp_path / "node.offset_ms"
    clock_file.write_text("600000\n")  # ten minutes ahead
    node = BackendNode.start(redis_url, name="c", admin_token=admin_token, log_dir=tmp_path,
                             extra_args=["--clock-file", str(clock_file)])
    try:
        ahead = node.client().health()[1]["clock_ms"] - time.time() * 1000
        assert 590_000 < ahead < 610_000, ahead
        clock_file.write_text("-5000")
        os.utime(clock_file, ns=(1, 1))  # a new mtime even within the file system's timestamp granularity
        behind = node.client().health()[1]["clock_ms"] - time.time() * 1000
        assert -15_000 < behind < 0, behind
    finally:
        node.stop()


def test_a_node_without_a_token_makes_one_and_prints_it(redis_url, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "OVERSOLD_ADMIN_TOKEN"}
    child = Child.start(
        [sys.executable, "-m", "reference_backend", "--port", str(port), "--redis-url", redis_url,
         "--node-name", "anon"],
        name="anon", log_dir=tmp_path, env=env | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        assert wait_for_port(port, timeout=10, child=child)
        lines = [line for line in child.log_tail(50).splitlines() if line.startswith("admin-token: ")]
        assert len(lines) == 1
        token = lines[0].split(": ", 1)[1]
        good = ContractClient(f"http://127.0.0.1:{port}", admin_token=token)
        assert good.put_sale("x", stock=1, hold_ttl_ms=10, strategy="naive")[0] == 200
        bad = ContractClient(f"http://127.0.0.1:{port}", admin_token="guess")
        assert bad.put_sale("x", stock=1, hold_ttl_ms=10, strategy="naive")[0] == 401
    finally:
        child.stop()


def test_a_node_that_cannot_start_raises_with_its_log(redis_url, tmp_path, admin_token):
    with pytest.raises(BackendUnavailable) as caught:
        BackendNode.start(redis_url, name="broken", admin_token=admin_token, log_dir=tmp_path,
                          extra_args=("--reap-interval-ms", "0"))
    assert "must be >= 1" in str(caught.value)


def test_a_busy_port_given_explicitly_is_an_error(redis_url, tmp_path, admin_token):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(BackendUnavailable):
            BackendNode.start(redis_url, name="busy", admin_token=admin_token, log_dir=tmp_path,
                              port=taken.getsockname()[1], timeout=5)


def test_client_transport_errors_say_whether_the_request_may_have_applied():
    refused = ContractClient(f"http://127.0.0.1:{free_port()}", timeout=1)
    with pytest.raises(TransportError) as caught:
        refused.order("s", "u", 1)
    assert caught.value.maybe_applied is False
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        client = ContractClient(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3)
        with pytest.raises(TransportError) as caught:
            client.order("s", "u", 1)
        assert caught.value.maybe_applied is True and "timed out" in str(caught.value)


def test_client_survives_a_node_restart_on_the_same_port(redis_url, tmp_path, admin_token):
    node = BackendNode.start(redis_url, name="r", admin_token=admin_token, log_dir=tmp_path)
    client = node.client()
    try:
        assert client.put_sale("s", stock=2, hold_ttl_ms=60_000, strategy="pre_deduct")[0] == 200
        node = restart(node, redis_url, admin_token, tmp_path)
        assert client.sale("s")[1]["available"] == 2  # a read is resent on a fresh connection
        node = restart(node, redis_url, admin_token, tmp_path)
        assert client.order("s", "u", 1, key="k1")[0] == 201  # so is a write under a key
        node = restart(node, redis_url, admin_token, tmp_path)
        with pytest.raises(TransportError) as caught:  # a write without a key is never resent
            client.order("s", "u", 1)
        assert caught.value.maybe_applied is True
        assert client.sale("s")[1]["held"] == 1
    finally:
        node.stop()


def restart(node: BackendNode, redis_url: str, admin_token: str, log_dir: Path) -> BackendNode:
    node.stop()
    return BackendNode.start(redis_url, name=node.name, admin_token=admin_token, log_dir=log_dir, port=node.port)


def test_client_works_under_gevent(backend):
    code = (
        "from gevent import monkey; monkey.patch_all()\n"
        "import gevent, sys\n"
        "from oversold.adapters.contract_client import ContractClient\n"
        "c = ContractClient(sys.argv[1])\n"
        "jobs = [gevent.spawn(c.health) for _ in range(20)]\n"
        "gevent.joinall(jobs, timeout=10)\n"
        "assert all(j.value[0] == 200 for j in jobs), [j.value for j in jobs]\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code, backend[0].url], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


