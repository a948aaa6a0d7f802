"""pre_deduct_buckets on real nodes and a real Redis: home buckets, falling back, sell-out, transfers, resets.

A single Redis holds every bucket here (each under its own hash tag, so on its
own slot); tests/integration/test_cluster.py runs the same strategy on a Redis Cluster.
"""

from __future__ import annotations

import json
import re
import time
import zlib
from collections import Counter

import redis

from backend_util import assert_conserved, clients, concurrently, counters, wait_for
from reference_backend import lua
from reference_backend.keys import SaleKeys


def put(client, sale_id: str, **overrides):
    cfg = {"stock": 12, "hold_ttl_ms": 30_000, "strategy": "pre_deduct_buckets", "buckets": 4} | overrides
    status, body = client.put_sale(sale_id, **cfg)
    assert status == 200, body
    assert (body["available"], body["held"], body["sold"], body["buckets"]) == (cfg["stock"], 0, 0, cfg["buckets"])
    return body


def users_of_bucket(bucket: int, buckets: int, n: int) -> list[str]:
    """n user ids whose home bucket is ``bucket`` (crc32 of the id, as the strategy picks it)."""
    found, i = [], 0
    while len(found) < n:
        user = f"user-{i}"
        if zlib.crc32(user.encode()) % buckets == bucket:
            found.append(user)
        i += 1
    return found


def buckets_of(client, sale_id: str) -> list[dict]:
    status, audit = client.audit(sale_id)
    assert status == 200, audit
    return audit["buckets"]


def test_users_of_one_bucket_buy_the_whole_stock_then_sold_out(backend):
    """Every order comes from bucket 0's users: the other buckets' units are brought over, none stranded."""
    a, b = clients(backend)
    put(a, "hot", stock=12, buckets=4)
    assert [x["available"] for x in buckets_of(a, "hot")] == [3, 3, 3, 3]
    users = users_of_bucket(0, 4, 20)
    results = concurrently([lambda i=i: (a, b)[i % 2].order("hot", users[i], 1) for i in range(20)])
    assert Counter(s for s, _ in results) == {201: 12, 409: 8}
    assert {body["error"]["code"] for s, body in results if s == 409} == {"sold_out"}
    assert all("-b0_" in body["order_id"] for s, body in results if s == 201)  # all held in their home bucket
    audit = assert_conserved(a, "hot")
    assert (audit["counters"]["available"], audit["counters"]["held"]) == (0, 12)
    assert [(x["stock"], x["held"]) for x in audit["buckets"]] == [(12, 12), (0, 0), (0, 0), (0, 0)]


def test_sold_out_only_when_every_bucket_is_empty_and_a_multi_unit_order_gathers(backend):
    a, b = clients(backend)
    put(a, "hot", stock=5, buckets=5)  # one unit per bucket
    user = users_of_bucket(2, 5, 1)[0]
    status, body = a.order("hot", user, 4)  # needs units from 3 other buckets
    assert status == 201, body
    assert body["qty"] == 4 and "-b2_" in body["order_id"]
    assert b.order("hot", users_of_bucket(2, 5, 2)[1], 2)[0] == 409  # 1 left somewhere: 2 is too many
    status, body = b.order("hot", users_of_bucket(4, 5, 1)[0], 1)  # the last unit, from wherever it is
    assert status == 201, body
    status, body = a.order("hot", "anyone", 1)
    assert (status, body["error"]["code"]) == (409, "sold_out")
    assert assert_conserved(a, "hot")["counters"]["available"] == 0


def test_limits_idempotency_pay_cancel_refund_and_reads_go_to_the_home_bucket(backend):
    a, b = clients(backend)
    put(a, "hot", stock=20, buckets=3, per_user_limit=2)
    one = a.order("hot", "alice", 1, key="a-1")
    again = b.order("hot", "alice", 1, key="a-1")  # a retry through the other node: the same answer
    assert one == again and one[0] == 201
    assert a.order("hot", "alice", 1, key="a-2")[0] == 201
    status, body = b.order("hot", "alice", 1, key="a-3")
    assert (status, body["error"]["code"]) == (409, "limit_exceeded")
    assert a.order("hot", "alice", 2, key="a-1")[0] == 422  # the same key for another request
    oid = one[1]["order_id"]
    assert a.get_order("hot", oid) == (200, one[1])
    assert b.pay("hot", oid, key="p-1")[1]["status"] == "paid"
    assert a.refund("hot", oid, key="r-1")[1]["status"] == "refunded"
    status, second = a.order("hot", "bob", 1)
    assert b.cancel("hot", second["order_id"])[1]["status"] == "cancelled"
    assert a.get_order("hot", "17-b9_0123456789ab")[0] == 404  # no bucket 9
    assert a.get_order("hot", "17-0123456789ab")[0] == 404  # not an id of a bucketed sale
    audit = assert_conserved(b, "hot")
    assert (audit["counters"]["sold"], audit["counters"]["held"], audit["refunded_sold"]) == (1, 1, 1)
    assert [r["order_id"] for r in audit["refunds"]] == [oid]
    assert audit["released"] == [{"order_id": second["order_id"], "qty": 1}]  # the cancel, in bob's bucket


def test_expired_holds_come_back_to_their_bucket_and_are_sold_from_there(backend):
    a, b = clients(backend)
    put(a, "hot", stock=4, buckets=2, hold_ttl_ms=1500)
    hoarder = users_of_bucket(0, 2, 1)[0]
    status, hoard = a.order("hot", hoarder, 4)
    assert status == 201  # takes bucket 1's units too
    assert b.order("hot", users_of_bucket(1, 2, 1)[0], 1)[0] == 409
    assert wait_for(lambda: counters(a, "hot")["available"] == 4, timeout=6)
    buyers = users_of_bucket(1, 2, 4)
    assert [b.order("hot", u, 1)[0] for u in buyers] == [201] * 4
    audit = assert_conserved(a, "hot")
    assert audit["counters"]["held"] == 4
    # the reaper of the hoarder's bucket recorded the release (the audit joins every bucket's)
    assert audit["released"] == [{"order_id": hoard["order_id"], "qty": 4}]


def test_a_transfer_stranded_between_its_steps_counts_as_available_and_is_finished(backend, redis_url):
    """bucket_send ran, the node died before bucket_receive: any node's rebalancer finishes it, once."""
    a, _ = clients(backend)
    put(a, "hot", stock=10, buckets=2)
    tags = [x["tag"] for x in buckets_of(a, "hot")]
    r = redis.Redis.from_url(redis_url)
    try:
        layout = r.hget(SaleKeys(tags[0]).meta, "strategy").decode()
        src = SaleKeys(tags[0])
        sent = r.register_script(lua.source("bucket_send"))(
            keys=[src.meta, src.avail, src.sent], args=["dead-node-1", 1, 3, layout])
        assert sent == 3
        c = assert_conserved(a, "hot")["counters"]  # the 3 units in flight still count as available
        assert c["available"] == 10
        assert wait_for(lambda: r.hlen(src.sent) == 0, timeout=4)  # finished by a rebalancer (STRANDED_MS 1 s)
        assert r.sismember(SaleKeys(tags[1]).received, "dead-node-1")
        assert [x["stock"] for x in buckets_of(a, "hot")] == [2, 8]
        assert assert_conserved(a, "hot")["counters"]["available"] == 10
    finally:
        r.close()


def test_units_in_flight_are_on_sale_an_order_finishes_their_transfer_rather_than_answer_sold_out(backend, redis_url):
    """A transfer between its two steps (its node slow, or dead, less than STRANDED_MS ago) holds units
    that are in no bucket. An order finding every bucket empty finishes it and buys them."""
    a, b = clients(backend)
    put(a, "hot", stock=3, buckets=3)  # 1, 1, 1: no bucket ever has the 2 units the rebalancer needs to move any
    tags = [x["tag"] for x in buckets_of(a, "hot")]
    buyers = users_of_bucket(0, 3, 2)
    assert a.order("hot", buyers[0], 1)[0] == 201  # bucket 0 empty
    r = redis.Redis.from_url(redis_url)
    try:
        layout = r.hget(SaleKeys(tags[0]).meta, "strategy").decode()
        send = r.register_script(lua.source("bucket_send"))
        ahead = int(time.time() * 1000) + 60_000  # no rebalancer takes them for stranded (STRANDED_MS) first
        for src, dst in ((1, 2), (2, 1)):  # each unit halfway to the other bucket
            k = SaleKeys(tags[src])
            assert send(keys=[k.meta, k.avail, k.sent], args=[f"slow-{src}", dst, 1, layout]) == 1
            r.hset(k.sent, f"slow-{src}", f"{dst}:1:{ahead}")
        assert [x["available"] for x in buckets_of(a, "hot")] == [0, 0, 0]
        status, body = b.order("hot", buyers[1], 2)
        assert status == 201, body  # not sold_out: the node finished both transfers and brought the units over
        assert r.hlen(SaleKeys(tags[1]).sent) == r.hlen(SaleKeys(tags[2]).sent) == 0
        assert r.sismember(SaleKeys(tags[2]).received, "slow-1") and r.sismember(SaleKeys(tags[1]).received, "slow-2")
    finally:
        r.close()
    assert b.order("hot", "late", 1)[1]["error"]["code"] == "sold_out"
    audit = assert_conserved(a, "hot")
    assert (audit["counters"]["held"], audit["counters"]["available"]) == (3, 0)


def test_a_proven_sell_out_is_answered_only_if_the_home_bucket_sent_nothing_since(backend, redis_url):
    """The last answer's script checks the home bucket's send count against the proof's second look:
    a transfer out since may have taken units the proof counted on, so the order is asked again."""
    a, _ = clients(backend)
    put(a, "hot", stock=2, buckets=2)  # 1 and 1
    home = SaleKeys(buckets_of(a, "hot")[0]["tag"])
    assert a.order("hot", users_of_bucket(0, 2, 1)[0], 1)[0] == 201  # bucket 0 empty, bucket 1 has 1
    r = redis.Redis.from_url(redis_url)
    try:
        layout = r.hget(home.meta, "strategy").decode()
        batch = r.register_script(lua.source("pre_deduct_order_batch"))
        orders = json.dumps([["k-1", "zed", "1", "", "", "n1"]])

        def answer(mode: str) -> tuple[bytes, bytes]:
            kind, payload = batch(keys=home.sale_keys(), args=[layout, "hot", home.order_prefix, mode, orders])
            return kind, payload

        sends = int(r.hget(home.meta, "sends") or 0)
        assert answer("need") == (b"n", b"0")  # short: how many there are, nothing written
        assert answer(str(sends + 1)) == (b"n", b"0")  # the proof saw another count: short again
        assert not r.exists(home.idem("order", "k-1"))
        kind, payload = answer(str(sends))  # the count the proof saw: the refusal, stored under its key
        assert kind == b"r" and b'"sold_out"' in payload, payload
        assert r.exists(home.idem("order", "k-1"))
    finally:
        r.close()


def test_a_bucket_gone_from_under_the_sale_is_a_503_not_a_sold_out(backend, redis_url):
    a, _ = clients(backend)
    put(a, "hot", stock=2, buckets=2)  # 1 and 1
    tags = [x["tag"] for x in buckets_of(a, "hot")]
    buyers = users_of_bucket(0, 2, 2)
    assert a.order("hot", buyers[0], 1)[0] == 201  # bucket 0 empty
    r = redis.Redis.from_url(redis_url)
    try:
        r.delete(SaleKeys(tags[1]).meta)  # bucket 1 lost (say, a shard that came back empty)
    finally:
        r.close()
    status, body = a.order("hot", buyers[1], 1)
    assert (status, body["error"]["code"]) == (503, "unavailable"), body
    assert "a bucket is missing" in body["error"]["message"]


def test_bucket_receive_tells_a_stale_layout_from_a_repeat(backend, redis_url):
    """A node still holding an old layout of a reset sale (same bucket names) may read the new sale's
    transfer records: its bucket_receive answers -1, not 0, so it leaves the record alone (_deliver)."""
    a, _ = clients(backend)
    put(a, "hot", stock=4, buckets=2)
    tags = [x["tag"] for x in buckets_of(a, "hot")]
    r = redis.Redis.from_url(redis_url)
    try:
        receive = r.register_script(lua.source("bucket_receive"))
        dst = SaleKeys(tags[1])
        layout = r.hget(dst.meta, "strategy").decode()
        assert receive(keys=[dst.meta, dst.avail, dst.received], args=["t-old", 1, layout + "x"]) == -1
        assert receive(keys=[dst.meta, dst.avail, dst.received], args=["t-1", 1, layout]) == 1
        assert receive(keys=[dst.meta, dst.avail, dst.received], args=["t-1", 1, layout]) == 0  # once per id
        assert not r.sismember(dst.received, "t-old")
    finally:
        r.close()


def test_the_rebalancer_moves_leftovers_into_an_empty_bucket(backend):
    a, _ = clients(backend)
    put(a, "hot", stock=8, buckets=2)
    user = users_of_bucket(0, 2, 1)[0]
    status, body = a.order("hot", user, 4)
    assert status == 201
    assert a.cancel("hot", body["order_id"])[0] == 200  # bucket 0: 4 back, bucket 1: 4
    a.order("hot", user, 4)  # bucket 0 empty again, bucket 1 full
    assert wait_for(lambda: [x["available"] for x in buckets_of(a, "hot")] == [2, 2], timeout=3)
    assert_conserved(a, "hot")


def test_resets_between_bucketed_and_plain_leave_no_bucket_behind(backend, redis_url):
    a, b = clients(backend)
    put(a, "hot", stock=9, buckets=3)
    a.order("hot", "alice", 2)
    old = [x["tag"] for x in buckets_of(a, "hot")]
    status, body = b.put_sale("hot", stock=5, hold_ttl_ms=1000, strategy="pre_deduct")
    assert status == 200 and body["available"] == 5
    r = redis.Redis.from_url(redis_url)
    try:
        assert not [k for t in old for k in r.keys(SaleKeys(t).prefix + "*")]
        assert not [m for m in r.smembers("os:sales") if b"~" in m]
    finally:
        r.close()
    status, plain = b.order("hot", "bob", 1)
    assert a.get_order("hot", plain["order_id"]) == (200, plain)  # a node holding the old layout reads it too
    status, body = a.order("hot", "alice", 1)  # and orders in the reset sale
    assert status == 201 and not re.search(r"-b\d+_", body["order_id"])  # a plain pre_deduct id
    put(b, "hot", stock=6, buckets=2)
    assert a.order("hot", "alice", 1)[0] == 201  # and back: the new layout is read again
    assert_conserved(b, "hot")


def test_settings_a_bucketed_sale_cannot_have_are_refused(backend):
    a, _ = clients(backend)
    for extra, field in (({"warn_thresholds": [5]}, "warn_thresholds"), ({"async_orders": True}, "async_orders"),
                         ({"buckets": 0}, "buckets"), ({"buckets": 257}, "buckets")):
        status, body = a.put_sale("bad", stock=5, hold_ttl_ms=1000, strategy="pre_deduct_buckets", **extra)
        assert status == 400 and body["error"]["message"].startswith(field), (extra, body)
    status, body = a.put_sale("bad", stock=5, hold_ttl_ms=1000, strategy="pre_deduct", buckets=4)
    assert status == 400 and body["error"]["message"].startswith("buckets: only a pre_deduct_buckets sale"), body
    assert a.sale("bad")[0] == 404  # nothing was written
