"""The protections on real nodes and real Redis; each test would fail with its protection switched off.

Purchase limits (限购), the scalper policy (黄牛), inventory warnings (库存预警)
and their webhook, the oversell detector (超卖检测), and admin refunds with
compensation (退款与赔偿).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from backend_util import assert_conserved, clients, concurrently, counters, wait_for, wait_rounds

from oversold.orchestrate.nodes import start_nodes

ATOMIC = ["pre_deduct", "order_deduct", "payment_deduct"]


def put(client, sale_id: str = "s", **overrides) -> dict:
    cfg = {"stock": 100, "hold_ttl_ms": 30_000, "strategy": "pre_deduct"} | overrides
    status, body = client.put_sale(sale_id, **cfg)
    assert status == 200, body
    return body


def audit(client, sale_id: str = "s") -> dict:
    status, body = client.audit(sale_id)
    assert status == 200, body
    return body


# --------------------------------------------------------------------------- purchase limits


@pytest.mark.parametrize("strategy", ATOMIC)
@pytest.mark.parametrize("limit", [3, 0])
def test_fifty_parallel_requests_of_one_user_cannot_pass_the_limit(backend, strategy, limit):
    a, b = clients(backend)
    put(a, strategy=strategy, per_user_limit=limit)
    results = concurrently([lambda i=i: (a, b)[i % 2].order("s", "greedy", 1) for i in range(50)])
    got = Counter(status for status, _ in results)
    if limit:
        assert got == {201: limit, 409: 50 - limit}
        assert {body["error"]["code"] for status, body in results if status == 409} == {"limit_exceeded"}
    else:  # the control: without the limit the same burst takes 50 units
        assert got == {201: 50}


# --------------------------------------------------------------------------- scalper policy

SCALPER = {"account_age_days": 2, "past_purchases": 0, "activity_score": 0.0, "membership_age_days": 0}
SUSPECT = {"account_age_days": 400, "past_purchases": 0, "activity_score": 0.05, "membership_age_days": 400}
GENUINE = {"account_age_days": 900, "past_purchases": 40, "activity_score": 0.8, "membership_age_days": 700}


@pytest.mark.parametrize("strategy", ATOMIC)
def test_scalpers_are_refused_and_suspects_limited(backend, strategy):
    a, b = clients(backend)
    put(a, strategy=strategy, per_user_limit=5, scalper_policy={},
        profiles={"scalper": SCALPER, "genuine": GENUINE})
    status, body = a.put_profiles("s", {"suspect": SUSPECT})  # a later batch adds to the first
    assert (status, body) == (200, {"sale_id": "s", "loaded": 1, "profiles": 3})
    status, body = b.order("s", "scalper", 1, key="k1")
    assert (status, body["error"]["code"]) == (409, "risk_rejected")
    assert "user_id" in body["error"]["message"]
    assert a.order("s", "scalper", 1, key="k1") == (status, body)  # the refusal is stored under its key
    suspects = concurrently([lambda i=i: (a, b)[i % 2].order("s", "suspect", 1) for i in range(20)])
    assert Counter(s for s, _ in suspects) == {201: 1, 409: 19}  # lowered to 1, atomically
    assert {body["error"]["code"] for s, body in suspects if s == 409} == {"limit_exceeded"}
    genuine = concurrently([lambda i=i: (a, b)[i % 2].order("s", "genuine", 1) for i in range(20)])
    assert Counter(s for s, _ in genuine) == {201: 5, 409: 15}  # the sale's own limit
    assert b.order("s", "stranger", 1)[0] == 201  # no profile: allowed
    taken = 0 if strategy == "payment_deduct" else 7  # payment_deduct takes stock only at payment
    assert counters(a, "s")["available"] == 100 - taken


@pytest.mark.parametrize("policy", [None, {"enabled": False}])
def test_without_the_policy_scalpers_buy(backend, policy):
    a, b = clients(backend)
    put(a, scalper_policy={}, profiles={"scalper": SCALPER})
    assert b.order("s", "scalper", 1)[1]["error"]["code"] == "risk_rejected"  # b now knows the policy
    settings = {"scalper_policy": policy} if policy is not None else {}
    put(a, profiles={"scalper": SCALPER}, **settings)  # reset through a: b's knowledge is stale
    results = concurrently([lambda i=i: (a, b)[i % 2].order("s", "scalper", 1) for i in range(10)])
    assert Counter(s for s, _ in results) == {201: 10}
    put(b, scalper_policy={}, profiles={"scalper": SCALPER})  # and back on, through the other node
    assert a.order("s", "scalper", 1)[1]["error"]["code"] == "risk_rejected"


# --------------------------------------------------------------------------- inventory warnings


def test_one_warning_per_crossing_and_a_new_one_after_restock(backend):
    a, b = clients(backend)
    put(a, stock=6, strategy="order_deduct", warn_thresholds=[2, 5, 0])
    assert a.order("s", "u1", 1)[0] == 201    # 6 -> 5: crosses 5
    assert b.order("s", "u2", 2)[0] == 201    # 5 -> 3: nothing
    big = a.order("s", "u3", 3)[1]            # 3 -> 0: crosses 2 and 0 in one step
    warnings = audit(a)["warnings"]
    assert [(w["threshold"], w["before"], w["available"], w["cause"]) for w in warnings] == [
        (5, 6, 5, "order"), (2, 3, 0, "order"), (0, 3, 0, "order")]
    assert all(w["stock"] == 6 and w["at_ms"] > 0 and "-" in w["id"] for w in warnings)
    assert b.cancel("s", big["order_id"])[0] == 200  # back up to 3: no warning going up
    assert len(audit(a)["warnings"]) == 3
    assert b.order("s", "u4", 1)[0] == 201  # 3 -> 2 again: a new crossing of 2
    assert [w["threshold"] for w in audit(a)["warnings"]] == [5, 2, 0, 2]


@pytest.mark.parametrize("thresholds", [[10, 0], []])
def test_concurrent_crossings_warn_exactly_once_each_time(backend, thresholds):
    a, b = clients(backend)
    put(a, stock=20, hold_ttl_ms=1500, warn_thresholds=thresholds)
    for round_ in (1, 2):  # the second round re-crosses after the reaper released the expired holds
        results = concurrently([lambda i=i: (a, b)[i % 2].order("s", f"u{round_}-{i}", 1) for i in range(40)])
        assert sum(status == 201 for status, _ in results) == 20
        assert [w["threshold"] for w in audit(b)["warnings"]] == thresholds * round_
        assert wait_for(lambda: counters(a, "s")["available"] == 20, timeout=5)


def test_payment_deduct_warns_when_payments_take_the_stock(backend):
    a, _ = clients(backend)
    put(a, stock=2, strategy="payment_deduct", warn_thresholds=[0])
    orders = [a.order("s", f"u{i}", 1)[1]["order_id"] for i in range(3)]
    assert audit(a)["warnings"] == []  # ordering takes nothing
    for oid in orders:
        a.pay("s", oid)
    assert [(w["threshold"], w["cause"]) for w in audit(a)["warnings"]] == [(0, "pay")]


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_warnings_reach_the_webhook_once_each(backend):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    Hook.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        a, b = clients(backend)
        url = f"http://127.0.0.1:{server.server_address[1]}/hook?x=1"
        put(a, stock=3, warn_thresholds=[1, 0], warn_webhook_url=url)
        concurrently([lambda i=i: (a, b)[i % 2].order("s", f"u{i}", 1) for i in range(5)])
        assert wait_for(lambda: len(Hook.received) >= 2, timeout=5)
        assert wait_rounds([a, b], "webhook", 3)  # three more passes of both forwarders: nothing posted twice
        ids = [w["id"] for w in audit(a)["warnings"]]
        assert sorted(e["id"] for e in Hook.received) == sorted(ids) and len(ids) == 2
        first = min(Hook.received, key=lambda e: e["id"])
        assert (first["event"], first["sale_id"], first["threshold"], first["available"]) == (
            "inventory_warning", "s", 1, 1)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --------------------------------------------------------------------------- oversell detector


@pytest.fixture(scope="module")
def naive_node(redis_server, tmp_path_factory, admin_token):
    """One node with a wide naive race window and a fast detector."""
    nodes = start_nodes(1, redis_server.url, admin_token=admin_token, log_dir=tmp_path_factory.mktemp("detector"),
                        name_prefix="detector", extra_args=("--naive-delay-ms", "300", "--monitor-interval-ms", "50"))
    yield nodes[0]
    nodes[0].stop()


def test_the_detector_alerts_on_a_naive_oversell_once_per_excess(redis_url, naive_node):
    c = naive_node.client()
    put(c, "n", stock=2, strategy="naive")
    orders = concurrently([lambda i=i: c.order("n", f"u{i}", 1) for i in range(6)])
    held = [body["order_id"] for status, body in orders if status == 201]
    assert len(held) > 2  # they all read available == 2
    concurrently([lambda o=o: c.pay("n", o) for o in held])
    sold = audit(c, "n")["sold"]
    assert len(sold) > 2
    assert wait_for(lambda: audit(c, "n")["alerts"], timeout=3)
    assert wait_rounds([c], "monitor", 6)  # six more detector passes: no new alert for the same excess
    alerts = audit(c, "n")["alerts"]
    excess = len(sold) - 2
    assert alerts[-1]["excess"] == excess and alerts[-1]["stock"] == 2 and alerts[-1]["sold_units"] == len(sold)
    assert alerts[-1]["net_sold"] == len(sold) and alerts[-1]["refunded_units"] == 0
    assert [a["excess"] for a in alerts] == sorted({a["excess"] for a in alerts})  # each a new, larger excess
    # refunding the excess orders makes the sale good again; no alert follows
    latest = sorted(sold, key=lambda r: (r["paid_ms"], r["order_id"]))[2:]
    for row in latest:
        assert c.refund("n", row["order_id"])[1]["status"] == "refunded"
    assert wait_rounds([c], "monitor", 6)
    after = audit(c, "n")
    assert after["alerts"] == alerts and after["refunded_sold"] == excess
    assert len(after["refunds"]) == len(after["compensations"]) == excess


def test_the_detector_stays_quiet_under_pre_deduct(redis_url, naive_node, backend):
    c = naive_node.client()  # the same fast detector watches this sale too
    a, b = clients(backend)
    put(a, "p", stock=2)
    orders = concurrently([lambda i=i: (a, b)[i % 2].order("p", f"u{i}", 1) for i in range(6)])
    concurrently([lambda o=o: a.pay("p", o) for o in (body["order_id"] for s, body in orders if s == 201)])
    assert wait_rounds([c, a, b], "monitor", 3)  # the fast detector and both nodes' own looked at it
    got = audit(c, "p")
    assert len(got["sold"]) == 2 and got["alerts"] == []


# --------------------------------------------------------------------------- admin refund


def test_admin_refund_of_a_sold_order_records_refund_and_compensation(backend):
    a, b = clients(backend)
    put(a, stock=3, per_user_limit=1, price_cents=250, coupon_cents=1000)
    order = a.order("s", "u1", 1)[1]["order_id"]
    held = a.order("s", "u2", 1)[1]["order_id"]
    status, body = a.refund("s", held)
    assert (status, body["error"]["code"]) == (409, "not_refundable")
    assert a.pay("s", order)[0] == 200
    refunded = b.refund("s", order, key="r1")
    assert refunded[0] == 200 and refunded[1]["status"] == "refunded"
    assert a.refund("s", order, key="r1") == refunded
    assert a.refund("s", order)[1]["status"] == "refunded"  # once only
    assert a.pay("s", order)[1]["error"]["code"] == "order_refunded"
    assert a.cancel("s", order)[1]["error"]["code"] == "already_paid"
    got = assert_conserved(a, "s")
    assert [r["order_id"] for r in got["sold"]] == [order]  # it was sold; it did not ship
    assert [(r["order_id"], r["amount_cents"], r["reason"]) for r in got["refunds"]] == [(order, 250, "admin")]
    assert [(r["order_id"], r["kind"], r["value_cents"]) for r in got["compensations"]] == [(order, "coupon", 1000)]
    assert got["refunded_sold"] == 1 and got["payments"] == []
    c = got["counters"]
    assert (c["available"], c["held"], c["sold"]) == (1, 1, 1)  # no stock comes back
    assert a.order("s", "u1", 1)[0] == 201  # the buyer's allowance does
    assert a.refund("s", "999")[1]["error"]["code"] == "unknown_order"
    assert a.refund("nope", order)[1]["error"]["code"] == "unknown_sale"
