"""A node serves the same contract under either HTTP server, as one process that stops cleanly."""

from __future__ import annotations

import signal

import pytest

from oversold.infra.procs import port_open
from oversold.orchestrate.nodes import BackendNode
from reference_backend.servers import SERVERS


@pytest.mark.parametrize("server", SERVERS)
def test_a_node_sells_under_each_server_and_stops_on_sigterm(server, redis_url, tmp_path, admin_token):
    node = BackendNode.start(redis_url, name=f"s-{server}", admin_token=admin_token, log_dir=tmp_path,
                             extra_args=("--server", server))
    client = node.client()
    assert client.put_sale("m", stock=1, hold_ttl_ms=5000, strategy="pre_deduct")[0] == 200
    status, order = client.order("m", "u1", 1, key="k1")
    assert status == 201 and order["status"] == "held"
    assert client.order("m", "u2", 1, key="k2")[1]["error"]["code"] == "sold_out"
    assert client.pay("m", order["order_id"], key="p1")[1]["status"] == "paid"
    status, body = client.order("m", "u3", 0, key="k3")
    assert status == 400 and body["error"]["code"] == "bad_request"  # bad input is a 4xx under both
    # one process, no workers: the node's pid has no children
    children = open(f"/proc/{node.child.pid}/task/{node.child.pid}/children").read().split()
    assert children == []
    client.close()
    node.child.signal(signal.SIGTERM)
    rc = node.child.popen.wait(10)
    assert rc == 0 and f"node s-{server} stopped" in node.log_tail(), (rc, node.log_tail())
    assert not port_open(node.port)


@pytest.mark.parametrize("server", SERVERS)
def test_a_node_refuses_a_port_already_taken_under_each_server(server, redis_url, tmp_path, admin_token):
    first = BackendNode.start(redis_url, name=f"first-{server}", admin_token=admin_token, log_dir=tmp_path,
                              extra_args=("--server", server))
    second = BackendNode.spawn(redis_url, name=f"second-{server}", admin_token=admin_token, log_dir=tmp_path,
                               port=first.port, extra_args=("--server", server))
    try:
        # its health would be answered by the first node: wait for the second process itself
        rc = second.child.popen.wait(timeout=20)
        assert rc == 3, second.log_tail()
        assert f"port {first.port} on 127.0.0.1 is already in use" in second.log_tail()
        # the first node still answers every request: no second listener splits its traffic
        client = first.client()
        for _ in range(20):
            assert client.health()[0] == 200
        client.close()
        # granian's "experimental" notice is not in a node's log on every start
        assert "experimental" not in first.log_tail(200)
    finally:
        second.stop()
        first.stop()
