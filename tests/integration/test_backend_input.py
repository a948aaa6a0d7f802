"""Bad input: every malformed request gets the right 4xx and code, and Redis does not change at all."""

from __future__ import annotations

import http.client
import json
import random

import pytest
import redis

from oversold.infra.procs import free_port
from oversold.orchestrate.nodes import BackendNode

J = {"Content-Type": "application/json"}
ADMIN = {"Authorization": "Bearer test-admin-token"}
AJ = J | ADMIN
ORDER = "/v1/sales/s/orders"


def raw(node, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
        chunked: bool = False) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=5)
    try:
        if chunked:
            conn.request(method, path, body=iter([body or b""]), headers=headers or {}, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data), {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def snapshot(r: redis.Redis) -> dict:
    """Every key and value in Redis, to prove a refused request wrote nothing."""
    out = {}
    for key in r.keys("*"):
        kind = r.type(key)
        value = {
            b"string": r.get, b"hash": r.hgetall, b"set": r.smembers,
            b"zset": lambda k: r.zrange(k, 0, -1, withscores=True),
            b"stream": lambda k: (r.xrange(k), r.xinfo_groups(k)),
        }[kind](key)
        out[key] = (kind, value)
    return out


def js(**fields) -> bytes:
    return json.dumps(fields).encode()


@pytest.fixture
def setup(backend, redis_url):
    node = backend[0]
    client = node.client()
    assert client.put_sale("s", stock=5, hold_ttl_ms=600_000, strategy="pre_deduct")[0] == 200
    status, order = client.order("s", "u1", 1)
    # ids are '<seq>-<node nonce>' (unique across a Redis failover); the cases' ".../orders/1" is this order
    assert status == 201 and order["order_id"].startswith("1-")
    r = redis.Redis.from_url(redis_url)
    yield node, r
    r.close()


CASES = [
    # (id, method, path, headers, body, status, code, field named in the message)
    ("no-user", "POST", ORDER, J, js(qty=1), 400, "bad_request", "user_id"),
    ("no-qty", "POST", ORDER, J, js(user_id="u"), 400, "bad_request", "qty"),
    ("qty-str", "POST", ORDER, J, js(user_id="u", qty="1"), 400, "bad_request", "qty"),
    ("qty-float", "POST", ORDER, J, b'{"user_id":"u","qty":1.5}', 400, "bad_request", "qty"),
    ("qty-inf", "POST", ORDER, J, b'{"user_id":"u","qty":1e400}', 400, "bad_request", "qty"),
    ("qty-bool", "POST", ORDER, J, js(user_id="u", qty=True), 400, "bad_request", "qty"),
    ("qty-null", "POST", ORDER, J, js(user_id="u", qty=None), 400, "bad_request", "qty"),
    ("qty-zero", "POST", ORDER, J, js(user_id="u", qty=0), 400, "bad_request", "qty"),
    ("qty-neg", "POST", ORDER, J, js(user_id="u", qty=-1), 400, "bad_request", "qty"),
    ("qty-big", "POST", ORDER, J, js(user_id="u", qty=10**9 + 1), 400, "bad_request", "qty"),
    ("qty-huge", "POST", ORDER, J, js(user_id="u", qty=10**30), 400, "bad_request", "qty"),
    ("qty-list", "POST", ORDER, J, js(user_id="u", qty=[1]), 400, "bad_request", "qty"),
    ("user-empty", "POST", ORDER, J, js(user_id="", qty=1), 400, "bad_request", "user_id"),
    ("user-long", "POST", ORDER, J, js(user_id="x" * 129, qty=1), 400, "bad_request", "user_id"),
    ("user-int", "POST", ORDER, J, js(user_id=7, qty=1), 400, "bad_request", "user_id"),
    ("user-null", "POST", ORDER, J, js(user_id=None, qty=1), 400, "bad_request", "user_id"),
    ("user-ctrl", "POST", ORDER, J, js(user_id="a\nb", qty=1), 400, "bad_request", "user_id"),
    ("user-del", "POST", ORDER, J, js(user_id="a\x7fb", qty=1), 400, "bad_request", "user_id"),
    # a lone surrogate is no text: it could be neither stored nor answered (it was a 500)
    ("user-surrogate", "POST", ORDER, J, b'{"user_id":"\\ud800","qty":1}', 400, "bad_request", "body"),
    ("key-surrogate", "POST", ORDER, J, b'{"user_id":"u","qty":1,"\\udfff":1}', 400, "bad_request", "body"),
    ("body-empty", "POST", ORDER, J, b"", 400, "bad_request", "body"),
    ("body-broken", "POST", ORDER, J, b'{"user_id":', 400, "bad_request", "body"),
    ("body-array", "POST", ORDER, J, b"[1]", 400, "bad_request", "body"),
    ("body-string", "POST", ORDER, J, b'"x"', 400, "bad_request", "body"),
    ("body-nan", "POST", ORDER, J, b'{"user_id":"u","qty":NaN}', 400, "bad_request", "body"),
    ("ctype-text", "POST", ORDER, {"Content-Type": "text/plain"}, js(user_id="u", qty=1),
     415, "unsupported_media_type", "Content-Type"),
    ("ctype-none", "POST", ORDER, {}, js(user_id="u", qty=1), 415, "unsupported_media_type", "Content-Type"),
    ("ctype-form", "POST", ORDER, {"Content-Type": "application/x-www-form-urlencoded"}, b"user_id=u&qty=1",
     415, "unsupported_media_type", "Content-Type"),
    ("too-large", "POST", ORDER, J, js(user_id="u", qty=1, pad="x" * 17_000), 413, "payload_too_large", "body"),
    ("idem-empty", "POST", ORDER, J | {"Idempotency-Key": ""}, js(user_id="u", qty=1),
     400, "bad_request", "Idempotency-Key"),
    ("idem-long", "POST", ORDER, J | {"Idempotency-Key": "k" * 129}, js(user_id="u", qty=1),
     400, "bad_request", "Idempotency-Key"),
    ("idem-space", "POST", ORDER, J | {"Idempotency-Key": "a b"}, js(user_id="u", qty=1),
     400, "bad_request", "Idempotency-Key"),
    ("idem-slash", "POST", ORDER, J | {"Idempotency-Key": "a/b"}, js(user_id="u", qty=1),
     400, "bad_request", "Idempotency-Key"),
    ("sale-unknown", "POST", "/v1/sales/nope/orders", J, js(user_id="u", qty=1), 404, "unknown_sale", "sale_id"),
    ("sale-dot", "POST", "/v1/sales/a.b/orders", J, js(user_id="u", qty=1), 400, "bad_request", "sale_id"),
    ("sale-long", "POST", f"/v1/sales/{'s' * 65}/orders", J, js(user_id="u", qty=1), 400, "bad_request", "sale_id"),
    ("sale-space", "POST", "/v1/sales/a%20b/orders", J, js(user_id="u", qty=1), 400, "bad_request", "sale_id"),
    ("sale-empty", "POST", "/v1/sales//orders", J, js(user_id="u", qty=1), 400, "bad_request", "sale_id"),
    ("pay-unknown-order", "POST", "/v1/sales/s/orders/999/pay", {}, None, 404, "unknown_order", "order_id"),
    ("pay-bad-order", "POST", "/v1/sales/s/orders/a.b/pay", {}, None, 400, "bad_request", "order_id"),
    ("pay-unknown-sale", "POST", "/v1/sales/nope/orders/1/pay", {}, None, 404, "unknown_sale", "sale_id"),
    ("pay-body-array", "POST", "/v1/sales/s/orders/1/pay", J, b"[1]", 400, "bad_request", "body"),
    ("pay-body-broken", "POST", "/v1/sales/s/orders/1/pay", J, b"{", 400, "bad_request", "body"),
    ("pay-body-text", "POST", "/v1/sales/s/orders/1/pay", {"Content-Type": "text/plain"}, b"pay",
     415, "unsupported_media_type", "Content-Type"),
    ("pay-too-large", "POST", "/v1/sales/s/orders/1/pay", J, js(pad="x" * 17_000), 413, "payload_too_large", "body"),
    ("pay-idem-bad", "POST", "/v1/sales/s/orders/1/pay", {"Idempotency-Key": "ü"}, None,
     400, "bad_request", "Idempotency-Key"),
    ("cancel-unknown-order", "POST", "/v1/sales/s/orders/999/cancel", {}, None, 404, "unknown_order", "order_id"),
    ("cancel-bad-order", "POST", f"/v1/sales/s/orders/{'1' * 65}/cancel", {}, None, 400, "bad_request", "order_id"),
    ("cancel-idem-bad", "POST", "/v1/sales/s/orders/1/cancel", {"Idempotency-Key": "a;b"}, None,
     400, "bad_request", "Idempotency-Key"),
    ("get-unknown-order", "GET", "/v1/sales/s/orders/999", {}, None, 404, "unknown_order", "order_id"),
    ("get-order-unknown-sale", "GET", "/v1/sales/nope/orders/1", {}, None, 404, "unknown_sale", "sale_id"),
    ("get-unknown-sale", "GET", "/v1/sales/nope", {}, None, 404, "unknown_sale", "sale_id"),
    ("get-bad-sale", "GET", "/v1/sales/no*pe", {}, None, 400, "bad_request", "sale_id"),
    ("audit-unknown-sale", "GET", "/v1/sales/nope/audit", ADMIN, None, 404, "unknown_sale", "sale_id"),
    ("route-unknown", "GET", "/v1/nope", {}, None, 404, "not_found", "path"),
    ("route-v2", "GET", "/v2/health", {}, None, 404, "not_found", "path"),
    ("route-root", "GET", "/", {}, None, 404, "not_found", "path"),
    ("route-refund-unpaid", "POST", "/v1/sales/s/orders/1/refund", {}, None, 401, "unauthorized", "Authorization"),
    ("route-refunds", "POST", "/v1/sales/s/orders/1/refunds", {}, None, 404, "not_found", "path"),
    ("route-trailing", "GET", "/v1/sales/s/", {}, None, 404, "not_found", "path"),
    ("method-delete", "DELETE", "/v1/sales/s", ADMIN, None, 405, "method_not_allowed", "method"),
    ("method-get-orders", "GET", ORDER, {}, None, 405, "method_not_allowed", "method"),
    ("method-put-health", "PUT", "/v1/health", J, b"{}", 405, "method_not_allowed", "method"),
    ("method-get-pay", "GET", "/v1/sales/s/orders/1/pay", {}, None, 405, "method_not_allowed", "method"),
    ("method-post-audit", "POST", "/v1/sales/s/audit", ADMIN, None, 405, "method_not_allowed", "method"),
    ("admin-put-none", "PUT", "/v1/sales/s", J, js(stock=1, hold_ttl_ms=1, strategy="naive"),
     401, "unauthorized", "Authorization"),
    ("admin-put-wrong", "PUT", "/v1/sales/s", J | {"Authorization": "Bearer nope"},
     js(stock=1, hold_ttl_ms=1, strategy="naive"), 401, "unauthorized", "Authorization"),
    ("admin-put-bare", "PUT", "/v1/sales/s", J | {"Authorization": "test-admin-token"},
     js(stock=1, hold_ttl_ms=1, strategy="naive"), 401, "unauthorized", "Authorization"),
    ("admin-audit-none", "GET", "/v1/sales/s/audit", {}, None, 401, "unauthorized", "Authorization"),
    ("admin-audit-wrong", "GET", "/v1/sales/s/audit", {"Authorization": "Bearer x"}, None,
     401, "unauthorized", "Authorization"),
    ("sale-stock-neg", "PUT", "/v1/sales/s", AJ, js(stock=-1, hold_ttl_ms=1, strategy="naive"),
     400, "bad_request", "stock"),
    ("sale-stock-str", "PUT", "/v1/sales/s", AJ, js(stock="9", hold_ttl_ms=1, strategy="naive"),
     400, "bad_request", "stock"),
    ("sale-stock-bool", "PUT", "/v1/sales/s", AJ, js(stock=True, hold_ttl_ms=1, strategy="naive"),
     400, "bad_request", "stock"),
    ("sale-stock-big", "PUT", "/v1/sales/s", AJ, js(stock=10**9 + 1, hold_ttl_ms=1, strategy="naive"),
     400, "bad_request", "stock"),
    ("sale-stock-none", "PUT", "/v1/sales/s", AJ, js(hold_ttl_ms=1, strategy="naive"), 400, "bad_request", "stock"),
    ("sale-ttl-zero", "PUT", "/v1/sales/s", AJ, js(stock=1, hold_ttl_ms=0, strategy="naive"),
     400, "bad_request", "hold_ttl_ms"),
    ("sale-ttl-float", "PUT", "/v1/sales/s", AJ, js(stock=1, hold_ttl_ms=0.5, strategy="naive"),
     400, "bad_request", "hold_ttl_ms"),
    ("sale-ttl-none", "PUT", "/v1/sales/s", AJ, js(stock=1, strategy="naive"), 400, "bad_request", "hold_ttl_ms"),
    ("sale-strategy-unknown", "PUT", "/v1/sales/s", AJ, js(stock=1, hold_ttl_ms=1, strategy="magic"),
     400, "bad_request", "strategy"),
    ("sale-strategy-int", "PUT", "/v1/sales/s", AJ, js(stock=1, hold_ttl_ms=1, strategy=1),
     400, "bad_request", "strategy"),
    ("sale-strategy-none", "PUT", "/v1/sales/s", AJ, js(stock=1, hold_ttl_ms=1), 400, "bad_request", "strategy"),
    ("sale-limit-neg", "PUT", "/v1/sales/s", AJ, js(stock=1, hold_ttl_ms=1, strategy="naive", per_user_limit=-1),
     400, "bad_request", "per_user_limit"),
    ("sale-limit-str", "PUT", "/v1/sales/s", AJ, js(stock=1, hold_ttl_ms=1, strategy="naive", per_user_limit="2"),
     400, "bad_request", "per_user_limit"),
    ("sale-pae-bad", "PUT", "/v1/sales/s", AJ,
     js(stock=1, hold_ttl_ms=1, strategy="naive", pay_after_expiry="maybe"), 400, "bad_request", "pay_after_expiry"),
    ("sale-pae-int", "PUT", "/v1/sales/s", AJ,
     js(stock=1, hold_ttl_ms=1, strategy="naive", pay_after_expiry=1), 400, "bad_request", "pay_after_expiry"),
    *[(f"sale-{case}", "PUT", "/v1/sales/s", AJ, js(stock=1, hold_ttl_ms=1, strategy="pre_deduct", **{name: value}),
       400, "bad_request", field) for case, name, value, field in [
        ("refunds-str", "refunds", "no", "refunds"),
        ("refunds-int", "refunds", 0, "refunds"),
        ("price-neg", "price_cents", -1, "price_cents"),
        ("coupon-str", "coupon_cents", "5", "coupon_cents"),
        ("delay-big", "payment_delay_ms", 60_001, "payment_delay_ms"),
        ("delay-float", "payment_delay_ms", 1.5, "payment_delay_ms"),
        ("warn-int", "warn_thresholds", 5, "warn_thresholds"),
        ("warn-neg", "warn_thresholds", [10, -1], "warn_thresholds[1]"),
        ("warn-str", "warn_thresholds", ["10"], "warn_thresholds[0]"),
        ("warn-dup", "warn_thresholds", [3, 3], "warn_thresholds[1]"),
        ("warn-dup-float", "warn_thresholds", [3, 3.0], "warn_thresholds[1]"),
        ("warn-fraction", "warn_thresholds", [3.5], "warn_thresholds[0]"),
        ("warn-many", "warn_thresholds", list(range(17)), "warn_thresholds"),
        ("hook-remote", "warn_webhook_url", "http://example.com/hook", "warn_webhook_url"),
        ("hook-lan", "warn_webhook_url", "http://10.0.0.1/hook", "warn_webhook_url"),
        ("hook-https", "warn_webhook_url", "https://127.0.0.1/hook", "warn_webhook_url"),
        ("hook-userinfo", "warn_webhook_url", "http://u:p@127.0.0.1/hook", "warn_webhook_url"),
        ("hook-port", "warn_webhook_url", "http://127.0.0.1:99999/hook", "warn_webhook_url"),
        ("hook-int", "warn_webhook_url", 80, "warn_webhook_url"),
        ("hook-empty", "warn_webhook_url", "", "warn_webhook_url"),
        ("hook-newline", "warn_webhook_url", "http://127.0.0.1/hook\n", "warn_webhook_url"),
        ("hook-space", "warn_webhook_url", "http://127.0.0.1/a b", "warn_webhook_url"),
        ("hook-v6-long", "warn_webhook_url", "http://[0:0:0:0:0:0:0:1]/hook", "warn_webhook_url"),
        ("hook-zero-octet", "warn_webhook_url", "http://127.00.0.1/hook", "warn_webhook_url"),
        ("policy-list", "scalper_policy", [1], "scalper_policy"),
        ("policy-unknown", "scalper_policy", {"bogus": 1}, "scalper_policy.bogus"),
        ("policy-score", "scalper_policy", {"low_activity": 2}, "scalper_policy.low_activity"),
        ("policy-enabled", "scalper_policy", {"enabled": "yes"}, "scalper_policy.enabled"),
        ("policy-limit0", "scalper_policy", {"suspect_limit": 0}, "scalper_policy.suspect_limit"),
        ("policy-days", "scalper_policy", {"new_member_days": -1}, "scalper_policy.new_member_days"),
        ("profiles-list", "profiles", [1], "profiles"),
        ("profile-str", "profiles", {"u": "scalper"}, "profiles.u"),
        ("profile-missing", "profiles", {"u": {"account_age_days": 1}}, "profiles.u.past_purchases"),
        ("profile-score", "profiles", {"u": {"account_age_days": 1, "past_purchases": 0, "activity_score": 1.5,
                                             "membership_age_days": 0}}, "profiles.u.activity_score"),
        ("profile-user", "profiles", {"": {}}, "profiles"),
        ("profile-user-ctrl", "profiles", {"a\tb": {}}, "profiles"),
        ("profile-fraction", "profiles", {"u": {"account_age_days": 1.5, "past_purchases": 0, "activity_score": 0,
                                                "membership_age_days": 0}}, "profiles.u.account_age_days"),
    ]],
    ("profiles-none", "PUT", "/v1/sales/s/profiles", J, js(profiles={}), 401, "unauthorized", "Authorization"),
    ("profiles-missing", "PUT", "/v1/sales/s/profiles", AJ, js(other={}), 400, "bad_request", "profiles"),
    ("profiles-bad", "PUT", "/v1/sales/s/profiles", AJ, js(profiles={"u": {"account_age_days": -1}}),
     400, "bad_request", "profiles.u.account_age_days"),
    ("profiles-empty-body", "PUT", "/v1/sales/s/profiles", AJ, b"", 400, "bad_request", "body"),
    ("profiles-unknown-sale", "PUT", "/v1/sales/nope/profiles", AJ, js(profiles={}), 404, "unknown_sale", "sale_id"),
    ("profiles-get", "GET", "/v1/sales/s/profiles", ADMIN, None, 405, "method_not_allowed", "method"),
    ("refund-held", "POST", "/v1/sales/s/orders/1/refund", ADMIN, None, 409, "not_refundable", "order_id"),
    ("refund-unknown-order", "POST", "/v1/sales/s/orders/999/refund", ADMIN, None, 404, "unknown_order", "order_id"),
    ("refund-unknown-sale", "POST", "/v1/sales/nope/orders/1/refund", ADMIN, None, 404, "unknown_sale", "sale_id"),
    ("refund-bad-order", "POST", "/v1/sales/s/orders/a.b/refund", ADMIN, None, 400, "bad_request", "order_id"),
    ("refund-body-array", "POST", "/v1/sales/s/orders/1/refund", AJ, b"[1]", 400, "bad_request", "body"),
    ("refund-idem-bad", "POST", "/v1/sales/s/orders/1/refund", ADMIN | {"Idempotency-Key": "a b"}, None,
     400, "bad_request", "Idempotency-Key"),
    ("refund-get", "GET", "/v1/sales/s/orders/1/refund", ADMIN, None, 405, "method_not_allowed", "method"),
    ("sale-ctype", "PUT", "/v1/sales/s", ADMIN | {"Content-Type": "text/plain"},
     js(stock=1, hold_ttl_ms=1, strategy="naive"), 415, "unsupported_media_type", "Content-Type"),
    ("sale-broken", "PUT", "/v1/sales/s", AJ, b"{stock: 1}", 400, "bad_request", "body"),
    ("sale-bad-id", "PUT", "/v1/sales/a~b", AJ, js(stock=1, hold_ttl_ms=1, strategy="naive"),
     400, "bad_request", "sale_id"),
    # asynchronous orders and the warehouse ledger (these nodes have none)
    ("sale-async-str", "PUT", "/v1/sales/s", AJ, js(stock=1, hold_ttl_ms=1, strategy="pre_deduct", async_orders="yes"),
     400, "bad_request", "async_orders"),
    ("sale-async-int", "PUT", "/v1/sales/s", AJ, js(stock=1, hold_ttl_ms=1, strategy="pre_deduct", async_orders=1),
     400, "bad_request", "async_orders"),
    ("sale-async-naive", "PUT", "/v1/sales/s", AJ, js(stock=1, hold_ttl_ms=1, strategy="naive", async_orders=True),
     400, "bad_request", "async_orders"),
    ("sale-ledger-missing", "PUT", "/v1/sales/s", AJ, js(stock=1, hold_ttl_ms=1, strategy="pre_deduct_ledger"),
     409, "no_ledger", "strategy"),
    *[(f"{change}-{case}", "POST", f"/v1/sales/s/{change}", headers, body, status, code, field)
      for change in ("restock", "in_transit", "receive")
      for case, headers, body, status, code, field in [
        ("no-qty", AJ, js(), 400, "bad_request", "qty"),
        ("qty-zero", AJ, js(qty=0), 400, "bad_request", "qty"),
        ("qty-neg", AJ, js(qty=-3), 400, "bad_request", "qty"),
        ("qty-str", AJ, js(qty="2"), 400, "bad_request", "qty"),
        ("qty-float", AJ, b'{"qty":2.5}', 400, "bad_request", "qty"),
        ("qty-big", AJ, js(qty=10**9 + 1), 400, "bad_request", "qty"),
        ("body-empty", AJ, b"", 400, "bad_request", "body"),
        ("ctype", ADMIN | {"Content-Type": "text/plain"}, js(qty=1), 415, "unsupported_media_type", "Content-Type"),
        ("no-admin", J, js(qty=1), 401, "unauthorized", "Authorization"),
        ("no-ledger", AJ, js(qty=1), 409, "no_ledger", "ledger"),
    ]],
    ("restock-get", "GET", "/v1/sales/s/restock", ADMIN, None, 405, "method_not_allowed", "method"),
    ("restock-bad-sale", "POST", "/v1/sales/a.b/restock", AJ, js(qty=1), 400, "bad_request", "sale_id"),
]


@pytest.mark.parametrize(
    "method,path,headers,body,status,code,field", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_refused_and_writes_nothing(setup, method, path, headers, body, status, code, field):
    node, r = setup
    held = r.zrange("os:{s}:holds", 0, -1)[0].decode()  # the fixture's order (its id has a random part)
    path = path.replace("/v1/sales/s/orders/1", f"/v1/sales/s/orders/{held}")
    before = snapshot(r)
    got_status, got, got_headers = raw(node, method, path, body, headers)
    assert (got_status, got["error"]["code"]) == (status, code), got
    assert field in got["error"]["message"], got
    assert got_headers["content-type"] == "application/json"
    if status == 405:
        assert got_headers["allow"]
    if status == 401:
        assert got_headers["www-authenticate"].startswith("Bearer")
    assert snapshot(r) == before


def test_chunked_oversized_body_is_refused(setup):
    node, r = setup
    before = snapshot(r)
    status, body, _ = raw(node, "POST", ORDER, js(user_id="u", qty=1, pad="x" * 20_000), J, chunked=True)
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    assert snapshot(r) == before


def test_the_snapshot_does_see_a_write(setup):
    """Control for the check above: a good order does change Redis."""
    node, r = setup
    before = snapshot(r)
    status, body, _ = raw(node, "POST", ORDER, js(user_id="u", qty=1, extra="ignored"),
                          {"Content-Type": "application/json; charset=utf-8"})
    assert status == 201 and body["status"] == "held"
    assert snapshot(r) != before


def test_a_whole_number_written_with_a_fraction_is_that_integer(setup):
    """JSON, and JSON Schema's ``integer``, do not tell 2 from 2.0: the contract takes both as 2."""
    node, r = setup
    status, order, _ = raw(node, "POST", ORDER, b'{"user_id":"u","qty":2.0}', J)
    assert (status, order["qty"], order["status"]) == (201, 2, "held")
    assert r.get("os:{s}:avail") == b"2"  # 5 - the fixture's 1 - 2, stored as an integer
    status, sale, _ = raw(node, "PUT", "/v1/sales/t", b'{"stock":3.0,"hold_ttl_ms":1e3,"strategy":"naive",'
                                                      b'"warn_thresholds":[1.0]}', AJ)
    assert (status, sale["stock"], sale["hold_ttl_ms"]) == (200, 3, 1000)
    assert r.hget("os:{t}:meta", "warn_thresholds") == b"1"


def test_a_refused_reset_keeps_the_sale(setup):
    node, _ = setup
    client = node.client()
    status, _ = client.request("PUT", "/v1/sales/s", {"stock": 99, "hold_ttl_ms": 1, "strategy": "bogus"}, admin=True)
    assert status == 400
    c = client.sale("s")[1]
    assert (c["stock"], c["held"], c["strategy"]) == (5, 1, "pre_deduct")


def test_random_garbage_never_gets_a_5xx(setup):
    node, r = setup
    rng = random.Random(7)
    before = snapshot(r)
    # order 999 does not exist: a well-formed pay or cancel finds nothing to change
    paths = ["/v1/sales/s/orders", "/v1/sales/s/orders/999/pay", "/v1/sales/s/orders/999/cancel", "/v1/sales/s",
             "/v1/sales/s/audit", "/v1/health", "/v1/sales/%00/orders", "/v1/sales/s/orders/%ff"]
    blobs = [b"", b"{}", b"null", b"[]", b"{\"qty\":", b"\xff\xfe", b'{"user_id":{},"qty":{}}',
             b'{"user_id":"u","qty":1e400}', b'{"user_id":"u","qty":-0}', b'{"a":' * 2000 + b"1" + b"}" * 2000]
    for _ in range(150):
        method = rng.choice(["GET", "POST", "PUT", "PATCH"])
        headers = rng.choice([{}, J, {"Content-Type": "text/json"}, {"Idempotency-Key": "k" * rng.randint(0, 200)}])
        body = rng.choice(blobs)
        status, got, _ = raw(node, method, rng.choice(paths), body if method != "GET" else None, headers)
        assert 400 <= status < 500 or status == 200, (method, status, got)
    assert snapshot(r) == before


def test_redis_unreachable_is_503_and_only_then(redis_server, tmp_path, admin_token):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    node = BackendNode.start(dead, name="orphan", admin_token=admin_token, log_dir=tmp_path,
                             extra_args=("--redis-timeout-ms", "300"))
    try:
        client = node.client()
        assert client.health()[0] == 200  # liveness does not depend on Redis
        for status, body in (
            client.order("s", "u", 1), client.pay("s", "1"), client.cancel("s", "1"), client.get_order("s", "1"),
            client.sale("s"), client.audit("s"),
            client.put_sale("s", stock=1, hold_ttl_ms=10, strategy="pre_deduct"),
        ):
            assert (status, body["error"]["code"]) == (503, "unavailable"), body
        # bad input is still bad input: refused before Redis is asked
        status, body = client.request("POST", "/v1/sales/s/orders", {"user_id": "u", "qty": 0})
        assert (status, body["error"]["code"]) == (400, "bad_request")
        assert client.request("GET", "/v1/sales/s/audit")[0] == 401
    finally:
        node.stop()


def test_bad_warehouse_changes_move_neither_redis_nor_the_ledger(redis_url, tmp_path, admin_token):
    """On a node with a ledger: refused restocks, in-transit and receives leave both stores as they were."""
    from reference_backend.ledger import SqliteLedger

    path = tmp_path / "ledger.sqlite3"
    node = BackendNode.start(redis_url, name="ledger-input", admin_token=admin_token, log_dir=tmp_path,
                             extra_args=("--ledger", str(path)))
    r = redis.Redis.from_url(redis_url)
    led = SqliteLedger(path)
    try:
        client = node.client()
        assert client.put_sale("s", stock=5, hold_ttl_ms=60_000, strategy="pre_deduct")[0] == 200
        assert client.request("POST", "/v1/sales/s/in_transit", {"qty": 2}, admin=True)[0] == 200
        before, ledger_before, outbox = snapshot(r), led.counters("s"), led.pending_outbox()
        for path_, body, status, code, field in [
            ("/v1/sales/s/receive", js(qty=3), 409, "not_in_transit", "qty"),
            ("/v1/sales/s/restock", js(qty=0), 400, "bad_request", "qty"),
            ("/v1/sales/s/in_transit", js(qty="1"), 400, "bad_request", "qty"),
            ("/v1/sales/nope/restock", js(qty=1), 404, "unknown_sale", "sale_id"),
        ]:
            got_status, got, _ = raw(node, "POST", path_, body, AJ)
            assert (got_status, got["error"]["code"]) == (status, code), got
            assert field in got["error"]["message"], got
        assert snapshot(r) == before
        assert led.counters("s") == ledger_before and led.pending_outbox() == outbox
        assert led.counters("nope") is None
        status, _, _ = raw(node, "POST", "/v1/sales/s/receive", js(qty=2), AJ)  # control: a good one moves it
        assert status == 200 and led.counters("s").in_transit == 0
    finally:
        led.close()
        r.close()
        node.stop()


