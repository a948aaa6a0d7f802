"""Helpers of the reference backend tests: concurrent calls and conservation checks."""

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


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
