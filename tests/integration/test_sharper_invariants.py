"""The sharper invariants catch the backend bug each targets, end to end.

Real Redis, real reference backend nodes (and a real order processor): a client records every
request into a history with the harness's recorder and adapter, the harness's settle step reads
the final state, the checker judges. Each bug is planted by the test at the one place it lives,
as a buggy backend would leave it (a processor that acknowledges and never applies, a lost
idempotency record, a resurrected hold, a limit check that read a stale count, a reaper that
releases a cancelled hold again), and each test
first shows the checker before issue 13 (the old invariant's rule) would not have seen it.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import pytest
from backend_util import wait_for
from ledger_util import raw_redis

from oversold.adapters.contract import ContractAdapter
from oversold.adapters.http import AdapterClient
from oversold.adapters.outcome import Outcome
from oversold.adapters.settle import settle_and_read
from oversold.checker import Verdict, check
from oversold.model.history import FinalState, Op, accepted_orders
from oversold.model.scenario import Scenario
from oversold.model.scenario_file import parse_scenario
from oversold.orchestrate.workers import start_order_worker
from oversold.swarm.recorder import Recorder, to_op
from reference_backend.keys import ORDER_GROUP, SaleKeys
from reference_backend.lua import source

SALE = "planted"


class Shop:
    """One recorded client of a real node: every request an invoke and a completion in a history."""

    def __init__(self, url: str, token: str, scenario: Scenario) -> None:
        self.client = AdapterClient(ContractAdapter(admin_token=token), url)
        self.rec = Recorder()
        self.scenario = scenario
        self.keys = (f"k{n}" for n in itertools.count(1))
        self.ops: list[Op] = []
        assert self.client.setup_sale(SALE, scenario.sale.settings()).status == 200

    def _do(self, op: str, user: str, send: Callable[[], Outcome], qty: int, order_id: str | None,
            key: str | None) -> Outcome:
        p = self.rec.invoke(process=user, user_id=user, kind="buyer", op=op, sale_id=SALE, qty=qty,
                            order_id=order_id, key=key)
        out = send()
        self.rec.complete(p, out.type, status=out.status or None, code=out.code,
                          order_id=out.order_id if op == "order" else order_id)
        return out

    def order(self, user: str, qty: int = 1, key: str | None = None) -> Outcome:
        key = key or next(self.keys)
        return self._do("order", user, lambda: self.client.order(SALE, user, qty, key), qty, None, key)

    def pay(self, user: str, order_id: str, key: str | None = None) -> Outcome:
        key = key or next(self.keys)
        return self._do("pay", user, lambda: self.client.pay(SALE, order_id, key), 1, order_id, key)

    def cancel(self, user: str, order_id: str) -> Outcome:
        key = next(self.keys)
        return self._do("cancel", user, lambda: self.client.cancel(SALE, order_id, key), 1, order_id, key)

    def judge(self) -> tuple[Verdict, FinalState, list[Op]]:
        ops = [to_op(r) for r in self.rec.take()]
        final = settle_and_read(self.client, self.scenario, accepted=accepted_orders(ops, SALE))
        self.client.close()
        return check(ops, final, grace_ms=self.scenario.checker.grace_ms), final, ops


def scenario(**sale: Any) -> Scenario:
    return parse_scenario({"sale": {"id": SALE, "stock": 3, "hold_ttl_ms": 30_000, **sale},
                           "checker": {"grace_ms": 500, "quiesce_timeout_s": 3}})


def ok(out: Outcome) -> bool:
    """The request went through; a failure says how it ended (status, code, message)."""
    assert out.type == "ok", f"{out.type}: status {out.status}, code {out.code}, body {out.body}, error {out.error!r}"
    return True


def failed(v: Verdict) -> list[str]:
    return [i.name for i in v.invariants if i.status == "fail"]


@pytest.fixture
def shop(backend, admin_token):
    return lambda **sale: Shop(backend[0].url, admin_token, scenario(**sale))


def test_a_processor_that_acknowledges_and_never_applies_fails_orders_applied(shop, redis_url, tmp_path):
    s = shop(async_orders=True)
    placed = [s.order(f"u{i}") for i in (1, 2, 3)]
    assert [p.status for p in placed] == [202, 202, 202]
    # the planted bug: a processor takes u2's entry, acknowledges it and dies before applying it
    r = raw_redis(redis_url)
    queue = SaleKeys(SALE).order_queue
    entries = r.xrange(queue)  # the sale's stream and its group exist from the sale's creation
    lost = next(eid for eid, f in entries if f["order"] == placed[1].order_id)
    r.xack(queue, ORDER_GROUP, lost)
    r.xdel(queue, lost)
    worker = start_order_worker(redis_url, name="w-planted", log_dir=tmp_path, extra_args=("--interval-ms", "20"))
    try:
        assert wait_for(lambda: s.client.counters(SALE)["held"] == 2, timeout=10)
        v, final, _ = s.judge()
    finally:
        worker.stop()
        r.close()
    assert final.counters["queued"] == 0  # the queue is empty: a queue-length check passes
    assert final.extra["orders"][placed[1].order_id] == "pending"
    assert failed(v) == ["orders_applied"]
    assert [e.get("order_id") for e in v.invariant("orders_applied").counterexamples] == [placed[1].order_id]


def test_a_lost_idempotency_record_fails_single_payment(shop, redis_url):
    s = shop(stock=1)
    held = s.order("u1")
    refused = s.order("u2", key="k-u2")
    assert (held.status, refused.code) == (201, "sold_out")
    assert ok(s.cancel("u1", held.order_id))
    # the planted bug: the stored first answer of u2's key is gone (an idempotency record that expired
    # too soon), so u2's retry runs again, into a state with stock
    r = raw_redis(redis_url)
    assert r.delete(SaleKeys(SALE).idem("order", "k-u2")) == 1
    r.close()
    retried = s.order("u2", key="k-u2")
    assert retried.status == 201
    assert ok(s.pay("u2", retried.order_id))
    v, _, ops = s.judge()
    # before issue 13 only ok replies were compared: one ok under k-u2, nothing to see
    assert sum(1 for o in ops if o.key == "k-u2" and o.type == "ok") == 1
    assert failed(v) == ["single_payment"]
    example = v.invariant("single_payment").counterexamples[0]
    assert example["key"] == "k-u2" and [x[0] for x in example["replies"]] == [409, 201]


def test_a_resurrected_cancelled_order_fails_no_resurrection(shop, redis_url):
    s = shop(stock=2)
    o = s.order("u1")
    assert ok(s.cancel("u1", o.order_id))
    # the planted bug: the cancelled order is made a live hold again (its units taken back from stock),
    # as a backend that "repairs" a cancelled order on payment would
    k = SaleKeys(SALE)
    r = raw_redis(redis_url)
    r.hset(k.order(o.order_id), "status", "held")
    # at its own expiry, 30 s on: the nodes' reaper (every 50 ms) must not take the hold back before the pay
    # (a score of 2**40 ms, meant as "never", is November 2004: the reaper released it, now and then)
    r.zadd(k.holds, {o.order_id: int(r.hget(k.order(o.order_id), "expires_ms"))})
    r.incrby(k.held, 1)
    r.decrby(k.avail, 1)
    r.hincrby(k.users, "u1", 1)
    r.close()
    assert ok(s.pay("u1", o.order_id))
    v, _, _ = s.judge()
    assert failed(v) == ["no_resurrection"]  # every count adds up: only the order's life went backwards
    assert v.invariant("no_resurrection").counterexamples[0]["order_id"] == o.order_id


def test_two_holds_of_one_account_past_the_limit_fail_per_user_limits(shop, redis_url):
    s = shop(stock=3, per_user_limit=1)
    first = s.order("u1")
    assert s.order("u1").code == "limit_exceeded"  # the backend enforces the limit...
    # the planted bug: the limit check reads a stale count (a non-atomic check, then the write), as two
    # parallel orders of one account would both read 0
    r = raw_redis(redis_url)
    r.hset(SaleKeys(SALE).users, "u1", 0)
    r.close()
    second = s.order("u1")
    assert second.status == 201  # ...but let this one through: u1 holds 2 units with a limit of 1
    assert ok(s.cancel("u1", second.order_id))
    assert ok(s.pay("u1", first.order_id))
    v, final, _ = s.judge()
    assert [e["qty"] for e in final.audit["sold"]] == [1] and final.audit["holds"] == []  # the end is within
    assert failed(v) == ["per_user_limits"]
    (example,) = v.invariant("per_user_limits").counterexamples
    assert example["when"] == "at_once" and example["units"] == 2
    assert example["order_ids"] == sorted([first.order_id, second.order_id])


def test_a_hold_released_twice_fails_stock_returned_once(shop, redis_url):
    s = shop(stock=3, hold_ttl_ms=30_000)
    kept, dropped = s.order("u1"), s.order("u2")
    assert ok(s.cancel("u2", dropped.order_id))  # released once, by the cancel
    # the planted bug: the cancel left the order on the reaper's list, and a reaper without the
    # "still held?" guard (the reference's own reap.lua, guard removed) releases it a second time
    k = SaleKeys(SALE)
    buggy = source("reap").replace("if f[1] == 'held' then", "if f[1] then")
    assert buggy != source("reap")
    r = raw_redis(redis_url)
    r.zadd(k.holds, {dropped.order_id: 0})
    assert r.eval(buggy, 4, k.holds, k.avail, k.held, k.users, k.order_prefix, 100) == 1
    r.close()
    assert ok(s.pay("u1", kept.order_id))
    v, final, _ = s.judge()
    assert {"order_id": dropped.order_id, "qty": 2} in final.audit["released"]
    (example,) = v.invariant("stock_returned_once").counterexamples
    assert (example["problem"], example["order_id"], example["returned"]) == ("returned_twice", dropped.order_id, 2)
    assert "stock_returned_once" in failed(v)
