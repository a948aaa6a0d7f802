"""A node serves the same contract under either HTTP server, as one process that stops cleanly."""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest

from oversold.infra.procs import port_open
from oversold.orchestrate.nodes import BackendNode
from reference_backend.node import cancel_and_wait
from reference_backend.servers import SERVERS, make_server


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


def test_an_unknown_server_is_refused():
    with pytest.raises(ValueError, match="server: must be one of granian, uvicorn"):
        make_server("apache", object(), host="127.0.0.1", port=1, backlog=1)


def test_cancel_and_wait_ends_a_loop_whose_first_cancel_wait_for_swallowed():
    """The SIGTERM hang: on 3.11 a cancel landing just as wait_for's inner call finished is
    lost (redis-py sends each command through wait_for), and the task's loop goes on."""

    async def scenario():
        async def quick():
            return "sent"

        rounds = []

        async def loop():  # like the reaper or the webhook forwarder: one command, a sleep
            while True:
                await asyncio.wait_for(quick(), 2)
                rounds.append(1)
                await asyncio.sleep(0.01)

        task = asyncio.create_task(loop())
        await asyncio.sleep(0)  # the loop is inside wait_for, its inner task scheduled
        await asyncio.sleep(0)  # the inner task finished; wait_for has not resumed yet
        await asyncio.wait_for(cancel_and_wait([task], recancel_s=0.05), 2)
        return task, rounds

    task, rounds = asyncio.run(scenario())
    assert task.cancelled()
    if sys.version_info < (3, 12):
        assert rounds  # the cancel came before the first round ended: it was swallowed, the loop went on
