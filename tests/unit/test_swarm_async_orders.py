"""The swarm against asynchronous orders: `oversold run` of scenarios/async_orders.yaml, real everything.

Real Redis, two real nodes, two real order processors (``reference_backend.order_worker``)
and a real Locust swarm: every order answers 202 ``pending``, the processors apply it
(held, or rejected ``sold_out``), buyers read their order until it is applied and pay
only a held one. The negative control SIGKILLs the order processors mid-run (from the
test: the chaos spec has no role for them): accepted orders stay queued and stock unsold.
Buyers wait on their queued orders, so demand stays under stock and ``sells_out`` does
not see it; ``orders_applied`` (nothing left queued once the sale settled) fails the run
while the safety invariants hold. Before ``orders_applied`` that run passed.

The unit test of ``oversold.swarm.users.applied`` runs in a subprocess: importing
Locust monkey-patches the process that imports it.
"""

from __future__ import annotations

import dataclasses

import subprocess

import pytest

from oversold.adapters.settle import settle_and_read
from oversold.checker import check
from oversold.model.history import FinalState, Op
from oversold.model.scenario_file import parse_scenario


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # SIGKILL: its state file is swept by the next run in that state dir
        out, err = proc.communicate()
        pytest.fail(f"oversold run did not finish in {timeout}s:\n{out}\n{err}")
    return proc.returncode, out + err


# -- the queued order as a swarm user judges it (unit) ------------------------------------------


# -- what the checker and the settle step make of queued orders (units) -----------------------


def _async_history(n: int) -> list[Op]:
    """``n`` orders answered 202 pending (ids o1..on), the first paid."""
    ops = []
    for i in range(1, n + 1):
        ops += [Op("invoke", f"u{i}-1", i, f"u{i}", f"u{i}", "buyer", "order", "s", key=f"k{i}"),
                Op("ok", f"u{i}-1", i + 0.1, f"u{i}", f"u{i}", "buyer", "order", "s", order_id=f"o{i}", key=f"k{i}",
                   status=202)]
    ops += [Op("invoke", "u1-2", 50, "u1", "u1", "buyer", "pay", "s", order_id="o1", key="p1"),
            Op("ok", "u1-2", 50.1, "u1", "u1", "buyer", "pay", "s", order_id="o1", key="p1", status=200)]
    return ops


def _async_final(queued: int | None, *, async_orders: bool = True, stock: int = 10) -> FinalState:
    counters = {"stock": stock, "available": stock - 1, "held": 0, "sold": 1}
    if queued is not None:
        counters |= {"async_orders": True, "queued": queued}
    audit = {"now_ms": 100, "holds": [], "sold": [{"order_id": "o1", "user_id": "u1", "qty": 1, "paid_ms": 60}],
             "counters": counters}
    sale = {"strategy": "pre_deduct", "stock": stock} | ({"async_orders": True} if async_orders else {})
    return FinalState(sale_id="s", stock=stock, hold_ttl_ms=1000, counters=counters, audit=audit, read_ms=100,
                      extra={"sale": sale})


def test_orders_left_in_the_queue_fail_orders_applied_though_demand_stayed_under_stock() -> None:
    ops = _async_history(4)
    stuck = check(ops, _async_final(queued=3))
    inv = stuck.invariant("orders_applied")
    assert (stuck.overall, inv.status) == ("fail", "fail")
    assert inv.message == "Of 4 accepted (202) orders, 3 are still queued once the sale settled."
    assert inv.counterexamples == ({"queued": 3, "accepted": 4, "stock": 10, "sold": 1},)
    # demand 4 never reached stock 10, so the liveness check of sells_out does not see it
    assert stuck.invariant("sells_out").status == "pass"
    assert [i.name for i in stuck.invariants if i.status == "fail"] == ["orders_applied"]

    read = {"o1": "paid", "o2": "rejected", "o3": "expired", "o4": "cancelled"}
    drained = check(ops, dataclasses.replace(_async_final(queued=0), extra={
        **_async_final(queued=0).extra, "orders": read}))
    assert drained.overall == "pass"
    assert drained.invariant("orders_applied").message == (
        "All 4 accepted (202) orders were applied or rejected, each read once the sale settled; none is left queued.")
    # an empty queue alone no longer passes: o2..o4 are neither sold nor held, and nobody read them
    unread = check(ops, _async_final(queued=0)).invariant("orders_applied")
    assert unread.status == "unknown" and [e["order_id"] for e in unread.counterexamples] == ["o2", "o3", "o4"]
    blind = check(ops, _async_final(queued=None))  # counters without "queued"
    assert blind.invariant("orders_applied").status == "unknown"  # async sale, nobody says what is queued
    sync = check(ops, _async_final(queued=None, async_orders=False))
    assert sync.invariant("orders_applied").status == "unknown"  # 202 answers: whatever the settings say, reconcile


class _QueueReader:
    """Counters of an async sale whose queue drains one order per read; no holds."""

    def __init__(self, queued: int) -> None:
        self.queued, self.reads = queued, 0

    def counters(self, sale_id: str) -> dict:
        self.reads += 1
        now, self.queued = self.queued, max(0, self.queued - 1)
        return {"stock": 5, "available": 5, "held": 0, "sold": 0, "async_orders": True, "queued": now}

    def audit(self, sale_id: str) -> dict:
        return {"now_ms": 1, "holds": [], "sold": []}  # no hold at all: never a reason to stop waiting


def test_settle_waits_for_the_queue_to_drain_not_just_for_holds() -> None:
    scenario = parse_scenario({"sale": {"id": "s", "stock": 5, "hold_ttl_ms": 1000, "async_orders": True},
                               "checker": {"grace_ms": 0, "quiesce_timeout_s": 5}})
    now = [0.0]
    clock, sleep = (lambda: now[0]), (lambda s: now.__setitem__(0, now[0] + s))
    final = settle_and_read(_QueueReader(3), scenario, clock=clock, sleep=sleep)
    assert final.counters is not None and final.counters["queued"] == 0
    assert now[0] == pytest.approx(0.3)  # three polls with orders queued (3, 2, 1), then 0
    now[0] = 0.0
    stuck = _QueueReader(10_000)  # nobody processes it: bounded by ttl + grace + quiesce
    final = settle_and_read(stuck, scenario, clock=clock, sleep=sleep)
    assert final.counters is not None and final.counters["queued"] > 0 and 6.0 <= now[0] < 6.2


# -- the sale through the queue, end to end ---------------------------------------------------


# -- negative control: the order processors die mid-run -----------------------------------------


