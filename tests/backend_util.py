"""Helpers of the reference backend tests: concurrent calls, conservation checks, and waiting.

The tests never sleep a fixed time: they wait on a condition (``wait_for``),
on the clock passing a deadline the backend reported (``wait_past``), or on a
node's background loops completing more passes (``wait_rounds``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from oversold.adapters.contract_client import ContractClient

T = TypeVar("T")


def clients(nodes: Sequence[Any], timeout: float = 10.0) -> list[ContractClient]:
    return [node.client(timeout=timeout) for node in nodes]


def concurrently(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run every call in its own thread, all released at once by a barrier."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait(timeout=10)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def counters(client: ContractClient, sale_id: str) -> dict[str, Any]:
    status, body = client.sale(sale_id)
    assert status == 200, body
    return body


def assert_conserved(client: ContractClient, sale_id: str) -> dict[str, Any]:
    """available + held + sold == stock in the counters, and the audit agrees with them."""
    status, audit = client.audit(sale_id)
    assert status == 200, audit
    c = audit["counters"]
    assert c["available"] >= 0 and c["held"] >= 0 and c["sold"] >= 0, c
    assert c["available"] + c["held"] + c["sold"] == c["stock"], c
    assert sum(row["qty"] for row in audit["sold"]) == c["sold"], audit
    assert sum(row["qty"] for row in audit["holds"]) == c["held"], audit
    assert len({row["order_id"] for row in audit["sold"]}) == len(audit["sold"]), audit
    return audit


def wait_for(predicate: Callable[[], Any], timeout: float = 3.0, interval: float = 0.02,
             sleep: Callable[[float], Any] = time.sleep) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` s passed; its last answer, as a bool.

    ``sleep`` between polls: ``gevent.sleep`` inside a gevent test.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        sleep(interval)
    return bool(predicate())


def wait_past(ms: int, margin_ms: int = 20, timeout: float = 10.0) -> bool:
    """Until this machine's wall clock is ``margin_ms`` past ``ms`` (epoch ms, e.g. an order's
    ``expires_ms``). Redis runs here too, so its TIME, which the backend stamps, is this clock."""
    return wait_for(lambda: time.time() * 1000 > ms + margin_ms, timeout=timeout, interval=0.005)


def rounds(client: ContractClient, loop: str) -> int:
    """How many passes the node's background ``loop`` (reaper, monitor, webhook) has completed."""
    status, body = client.health()
    assert status == 200, body
    return int(body["rounds"][loop])


def wait_rounds(nodes: Sequence[ContractClient], loop: str, n: int = 2, timeout: float = 10.0) -> bool:
    """Until every node has completed ``n`` passes of ``loop`` that began after this call.

    A pass may be under way when the count is read, so ``n`` whole passes after
    it end at count + n + 1.
    """
    start = [rounds(c, loop) for c in nodes]
    return wait_for(lambda: all(rounds(c, loop) >= s + n + 1 for c, s in zip(nodes, start)), timeout=timeout)
