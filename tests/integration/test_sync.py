"""The stock sync worker as a real process between real Redis and the real ledger file."""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest
import redis
from backend_util import assert_conserved, clients, counters, wait_for
from ledger_util import change, ledger_view, put, raw_redis, start_ledger_nodes, sync_pass_after, sync_worker

from reference_backend import lua
from reference_backend.keys import SYNC_DELAY_MS, SYNC_LAG_MS, SYNC_STALL
from reference_backend.ledger import SqliteLedger
from reference_backend.sync import SyncWorker


@pytest.fixture(scope="module")
def ledger_env(redis_server, tmp_path_factory):
    base = tmp_path_factory.mktemp("sync-nodes")
    path = base / "ledger.sqlite3"
    nodes = start_ledger_nodes(redis_server.url, path, base)
    yield nodes, path
    for node in nodes:
        node.stop()


@pytest.fixture
def env(redis_url, ledger_env, tmp_path):
    nodes, path = ledger_env
    started = []

    def start(**options):
        child = sync_worker(redis_url, path, tmp_path, **options)
        started.append(child)
        return child

    yield clients(nodes), path, redis_url, start
    for child in started:
        child.stop()


def buy(client, sale: str, user: str, qty: int = 1) -> str | None:
    status, order = client.order(sale, user, qty)
    if status != 201:
        return None
    status, _ = client.pay(sale, order["order_id"], key=f"pay-{order['order_id']}")
    return order["order_id"] if status == 200 else None


def in_sync(client, path, sale: str) -> bool:
    """Front and warehouse agree on stock and on every sold order."""
    audit = client.audit(sale)[1]
    c, sold = ledger_view(path, sale)
    front = {row["order_id"]: row["qty"] for row in audit["sold"]}
    return sold == front and c["stock"] == audit["counters"]["stock"]


def test_sales_reach_the_ledger_only_through_the_worker_and_the_lag_is_reported(env):
    (a, b), path, redis_url, start = env
    put(a, "s", stock=5, strategy="pre_deduct")
    bought = [buy((a, b)[i % 2], "s", f"u{i}") for i in range(4)]
    assert all(bought)
    assert wait_for(lambda: counters(a, "s")["sync_lag_ms"] >= 200)  # the oldest unapplied sale gets that old
    assert ledger_view(path, "s")[0]["sold"] == 0  # no worker, no sync: the front ran ahead
    lagging = counters(a, "s")["sync_lag_ms"]
    assert counters(a, "s")["sync_pending"] == 4
    start()
    assert wait_for(lambda: in_sync(a, path, "s"), timeout=5)
    assert ledger_view(path, "s")[1] == {o: 1 for o in bought}
    r = raw_redis(redis_url)
    assert r.xlen("os:{s}:events") == 0  # applied entries are acknowledged and deleted
    assert wait_for(lambda: r.hget("os:{s}:sync", "at_ms") is not None)
    assert r.get(SYNC_LAG_MS) is not None
    r.close()
    c = counters(b, "s")
    assert c["warehouse"] == {"stock": 5, "sold": 4, "in_transit": 0, "refused": 0} and c["sync_pending"] == 0
    assert lagging <= c["sync_lag_ms"] < lagging + 5000 and c["sync_at_ms"] is not None


def test_restock_and_in_transit_stock_flow_to_the_front(env):
    (a, b), path, redis_url, start = env
    start()
    put(a, "s", stock=1, strategy="pre_deduct")
    assert buy(a, "s", "u0")
    assert a.order("s", "u1", 1)[0] == 409
    assert wait_for(lambda: ledger_view(path, "s")[0]["sold"] == 1)
    status, body = change(a, "s", "restock", 2)
    assert status == 200 and body["warehouse"] == {"stock": 3, "sold": 1, "in_transit": 0, "refused": 0}
    assert wait_for(lambda: counters(b, "s")["available"] == 2)
    assert counters(b, "s")["stock"] == 3
    assert change(b, "s", "in_transit", 4)[0] == 200
    assert wait_for(lambda: counters(a, "s")["in_transit"] == 4)
    assert counters(a, "s")["available"] == 2  # on its way is not for sale
    status, body = change(a, "s", "receive", 5)
    assert (status, body["error"]["code"]) == (409, "not_in_transit")
    assert change(a, "s", "receive", 3)[0] == 200
    assert wait_for(lambda: counters(b, "s")["stock"] == 6)
    c = counters(b, "s")
    assert (c["available"], c["in_transit"], c["warehouse"]["in_transit"]) == (5, 1, 1)
    assert all(buy((a, b)[i % 2], "s", f"late{i}") for i in range(5))
    assert wait_for(lambda: in_sync(a, path, "s"), timeout=5)
    audit = assert_conserved(a, "s")
    assert audit["ledger"]["sold"] == 6 == audit["counters"]["sold"]
    led = SqliteLedger(path)
    assert led.oldest_outbox_ms("s") is None  # every change reached the front
    led.close()


def test_stall_and_delay_hold_the_sync_back_and_the_lag_shows_it(env):
    (a, _), path, redis_url, start = env
    r = raw_redis(redis_url)
    start(delay_ms=800)
    put(a, "s", stock=5, strategy="pre_deduct")
    t0 = time.monotonic()
    assert buy(a, "s", "u1")
    assert sync_pass_after(r, "s", counters(a, "s")["now_ms"])  # a pass saw the sale ...
    assert ledger_view(path, "s")[0]["sold"] == 0  # ... and --delay-ms held it back
    assert wait_for(lambda: ledger_view(path, "s")[0]["sold"] == 1, timeout=5)
    assert time.monotonic() - t0 >= 0.75
    # the worker notes the lag just after the ledger commit that the line above saw
    assert wait_for(lambda: r.hget("os:{s}:sync", "last_lag_ms") is not None)
    assert int(r.hget("os:{s}:sync", "last_lag_ms")) >= 750

    r.set(SYNC_DELAY_MS, 60_000)  # the runtime key overrides the command line ...
    assert buy(a, "s", "u2")
    assert sync_pass_after(r, "s", counters(a, "s")["now_ms"] + 1000)
    assert ledger_view(path, "s")[0]["sold"] == 1  # --delay-ms 800 alone would have let it through
    r.set(SYNC_DELAY_MS, 0)  # ... both ways
    assert wait_for(lambda: ledger_view(path, "s")[0]["sold"] == 2, timeout=5)

    r.set(SYNC_STALL, 1)
    assert sync_pass_after(r, "s", counters(a, "s")["now_ms"])  # the worker has read the stall
    assert buy(a, "s", "u3")
    assert change(a, "s", "restock", 1)[0] == 200
    assert sync_pass_after(r, "s", counters(a, "s")["now_ms"] + 600)
    assert ledger_view(path, "s")[0]["sold"] == 2 and counters(a, "s")["stock"] == 5  # stalled both ways
    assert counters(a, "s")["sync_pending"] == 2  # one sale, one restock
    assert counters(a, "s")["sync_lag_ms"] >= 550
    assert wait_for(lambda: int(r.get(SYNC_LAG_MS) or 0) >= 550)  # the worker reports while stalled
    r.delete(SYNC_STALL)
    assert wait_for(lambda: in_sync(a, path, "s"), timeout=5)
    assert counters(a, "s")["stock"] == 6
    assert int(r.hget("os:{s}:sync", "last_lag_ms")) >= 550
    r.close()


def test_kill_9_mid_stream_then_restart_loses_and_doubles_nothing(env):
    (a, b), path, redis_url, start = env
    worker = start()
    put(a, "s", stock=400, strategy="pre_deduct")
    stop = threading.Event()
    bought: list[str] = []

    def shopper(i: int) -> None:
        client = (a, b)[i % 2]
        rng = random.Random(i)
        n = 0
        while not stop.is_set():
            n += 1
            oid = buy(client, "s", f"u{i}-{n}", rng.randint(1, 2))
            if oid:
                bought.append(oid)

    threads = [threading.Thread(target=shopper, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    try:
        assert wait_for(lambda: ledger_view(path, "s")[0]["sold"] >= 10, timeout=10)
        worker.signal(signal.SIGKILL)  # mid-stream: some batch is likely between ledger commit and ack
        worker.popen.wait(5)
        assert change(a, "s", "restock", 7)[0] == 200  # a warehouse change while nobody syncs
        assert wait_for(lambda: counters(a, "s")["sync_pending"] >= 6, timeout=10)  # and the sales pile up
        sold_then = ledger_view(path, "s")[0]["sold"]
        start()  # the same consumer name: it resumes its own pending entries
        # it catches up both ways while the shoppers still buy
        assert wait_for(lambda: counters(a, "s")["stock"] == 407 and ledger_view(path, "s")[0]["sold"] > sold_then
                        and len(bought) > 30, timeout=10)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(bought) > 20
    assert wait_for(lambda: in_sync(a, path, "s"), timeout=10)
    c, sold = ledger_view(path, "s")
    audit = assert_conserved(a, "s")
    assert c["sold"] == audit["counters"]["sold"] == sum(sold.values())  # nothing applied twice
    assert set(sold) == set(bought)  # nothing lost
    assert c["stock"] == audit["counters"]["stock"] == 407  # the restock went through once
    assert c["refused"] == 0


class DiesBeforeAck(SyncWorker):
    """A worker killed right after its ledger commit, before XACK: the worst moment."""

    class Died(Exception):
        pass

    def _ack(self, stream, ids):
        raise self.Died()


def test_a_worker_dead_between_ledger_commit_and_ack_is_taken_over_without_double_apply(env, tmp_path):
    (a, b), path, redis_url, start = env
    put(a, "s", stock=10, strategy="pre_deduct")
    bought = [buy(a, "s", f"u{i}", 2) for i in range(3)]
    client = redis.Redis.from_url(redis_url)
    led = SqliteLedger(path)
    doomed = DiesBeforeAck(client, led, consumer="doomed")
    with pytest.raises(DiesBeforeAck.Died):
        doomed.tick()
    # the ledger has the sales, the stream still has them, pending under the dead consumer
    assert led.counters("s").sold == 6
    assert client.xpending("os:{s}:events", "sync")["pending"] == 3
    # a restock the dead worker applied to the front but never marked done in the outbox
    assert change(a, "s", "restock", 4)[0] == 200
    row = led.pending_outbox()
    assert [(x.kind, x.qty) for x in row] == [("restock", 4)]
    sync_front = client.register_script(lua.source("sync_front"))
    keys = ["os:{s}:meta", "os:{s}:avail", "os:{s}:front_applied"]
    assert sync_front(keys=keys, args=[row[0].id, "restock", 4, row[0].epoch]) == b"applied"
    assert counters(a, "s")["stock"] == 14
    worker = start(consumer="heir", extra_args=["--claim-idle-ms", "200"])
    assert wait_for(lambda: client.xlen("os:{s}:events") == 0, timeout=5)
    assert wait_for(lambda: led.oldest_outbox_ms("s") is None, timeout=5)
    assert led.counters("s").sold == 6 and dict(led.sold_orders("s")) == {o: 2 for o in bought}
    assert counters(b, "s")["stock"] == 14 == led.counters("s").stock  # not 18
    worker.stop()
    # the heir claimed the dead one's entries and saw each was applied already
    assert "duplicate=3" in worker.log_tail() and "outbox applied=0 skipped=1" in worker.log_tail()
    led.close()
    client.close()


def test_a_group_made_between_the_reset_scan_and_its_multi_does_not_break_the_reset(redis_url):
    """A worker's XGROUP CREATE ... MKSTREAM landing between the reset's scan and its
    MULTI used to make the MULTI's own group fail (BUSYGROUP): a 500 and a half reset."""
    import asyncio

    from reference_backend.keys import SYNC_GROUP, SaleKeys
    from reference_backend.sale import SaleConfig
    from reference_backend.store import Store

    k = SaleKeys("race")
    cfg = SaleConfig(stock=7, hold_ttl_ms=1000, strategy="pre_deduct_ledger", epoch="e1")

    async def reset_with_a_worker_in_the_gap() -> dict:
        store = Store.connect(redis_url)
        scan = store.redis.scan_iter

        async def scan_then_worker(*args, **kwargs):
            async for key in scan(*args, **kwargs):
                yield key
            await store.redis.xgroup_create(k.events, SYNC_GROUP, id="0", mkstream=True)  # the worker

        store.redis.scan_iter = scan_then_worker
        try:
            return await store.put_sale("race", cfg)
        finally:
            await store.close()

    counters = asyncio.run(reset_with_a_worker_in_the_gap())
    assert (counters["available"], counters["held"], counters["sold"]) == (7, 0, 0)
    r = raw_redis(redis_url)
    groups = r.xinfo_groups(k.events)
    assert [g["name"] for g in groups] == [SYNC_GROUP]
    assert r.hget(k.meta, "epoch") == "e1"
