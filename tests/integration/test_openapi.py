"""The contract document is valid OpenAPI 3.1, and the real backend answers as it says."""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path
from typing import Any

import yaml
from backend_util import wait_past
from openapi_util import DOC, DOC_PATH, METHODS, Conformance

from oversold.infra.procs import free_port
from oversold.orchestrate.nodes import BackendNode

ADMIN = {"Authorization": "Bearer test-admin-token"}


def call(node, conf: Conformance, method: str, path: str, body: Any = None, headers: dict | None = None,
         raw_body: bytes | None = None) -> tuple[int, Any]:
    sent = dict(headers or {})
    data = raw_body
    if body is not None:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=5)
    try:
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        raw = response.read()
        ctype = response.getheader("Content-Type", "")
    finally:
        conn.close()
    conf.check(method, path, response.status, ctype, raw)
    return response.status, (json.loads(raw) if ctype.startswith("application/json") else raw)


def test_the_backend_serves_this_document(backend):
    assert backend[0].client().openapi() == DOC_PATH.read_text()


def test_the_backend_conforms(backend, tmp_path, admin_token):
    """Every documented (operation, status) is met on a real node, and each answer fits its schema."""
    conf = Conformance()
    exercise_live(backend[0], conf)
    exercise_unavailable(conf, tmp_path, admin_token)
    exercise_warehouse(backend[0], conf, tmp_path, admin_token)
    documented = {
        (method.upper(), template, int(status))
        for template, item in DOC["paths"].items()
        for method, operation in item.items() if method in METHODS
        for status in operation["responses"]
    }
    missing = documented - conf.seen
    assert not missing, sorted(missing)
    assert conf.seen <= documented


def exercise_live(node: BackendNode, conf: Conformance) -> None:
    # the first order's hold must outlive the dozen calls before its pay, on a slow machine too
    sale = {"stock": 2, "hold_ttl_ms": 1500, "strategy": "pre_deduct", "pay_after_expiry": "refuse"}
    assert call(node, conf, "GET", "/v1/health")[0] == 200
    assert call(node, conf, "GET", "/v1/openapi.yaml")[0] == 200
    assert call(node, conf, "PUT", "/v1/sales/c", sale, ADMIN)[0] == 200
    assert call(node, conf, "PUT", "/v1/sales/c", sale)[0] == 401
    assert call(node, conf, "PUT", "/v1/sales/c", {"stock": -1}, ADMIN)[0] == 400
    status, body = call(node, conf, "PUT", "/v1/sales/c", {**sale, "strategy": "pre_deduct_ledger"}, ADMIN)
    assert (status, body["error"]["code"]) == (409, "no_ledger")  # this node has no warehouse ledger
    assert call(node, conf, "PUT", "/v1/sales/c", None, ADMIN | {"Content-Type": "text/plain"}, b"x")[0] == 415
    assert call(node, conf, "PUT", "/v1/sales/c", {"pad": "x" * 20_000}, ADMIN)[0] == 413
    assert call(node, conf, "DELETE", "/v1/sales/c", None, ADMIN)[0] == 405
    assert call(node, conf, "GET", "/v1/sales/c")[0] == 200
    assert call(node, conf, "GET", "/v1/sales/none")[0] == 404
    assert call(node, conf, "GET", "/v1/sales/a.b")[0] == 400

    orders = "/v1/sales/c/orders"
    status, first = call(node, conf, "POST", orders, {"user_id": "u1", "qty": 1}, {"Idempotency-Key": "o1"})
    assert status == 201
    assert call(node, conf, "POST", orders, {"user_id": "u2", "qty": 1}, {"Idempotency-Key": "o1"})[0] == 422
    status, second = call(node, conf, "POST", orders, {"user_id": "u2", "qty": 1})
    assert status == 201
    assert call(node, conf, "POST", orders, {"user_id": "u3", "qty": 1})[0] == 409
    assert call(node, conf, "POST", orders, {"user_id": "u3"})[0] == 400
    assert call(node, conf, "POST", orders, None, {"Content-Type": "text/plain"}, b"hi")[0] == 415
    assert call(node, conf, "POST", orders, {"user_id": "u", "qty": 1, "pad": "x" * 20_000})[0] == 413
    assert call(node, conf, "POST", "/v1/sales/none/orders", {"user_id": "u3", "qty": 1})[0] == 404
    assert call(node, conf, "GET", orders)[0] == 405

    one, two = f"{orders}/{first['order_id']}", f"{orders}/{second['order_id']}"
    assert call(node, conf, "GET", one)[0] == 200
    assert call(node, conf, "GET", f"{orders}/999")[0] == 404
    assert call(node, conf, "GET", f"{orders}/a.b")[0] == 400
    assert call(node, conf, "POST", f"{one}/pay", None, {"Idempotency-Key": "p1"})[0] == 200
    assert call(node, conf, "POST", f"{two}/pay", None, {"Idempotency-Key": "p1"})[0] == 422
    assert call(node, conf, "POST", f"{orders}/999/pay")[0] == 404
    assert call(node, conf, "POST", f"{one}/pay", None, {"Idempotency-Key": "no spaces"})[0] == 400
    assert call(node, conf, "POST", f"{one}/pay", None, {"Content-Type": "text/plain"}, b"x")[0] == 415
    assert call(node, conf, "POST", f"{one}/pay", {"pad": "x" * 20_000})[0] == 413
    assert call(node, conf, "POST", f"{one}/cancel")[0] == 409
    assert call(node, conf, "POST", f"{two}/cancel", {})[0] == 200
    assert call(node, conf, "POST", f"{two}/pay")[0] == 409
    assert call(node, conf, "POST", f"{orders}/999/cancel", None, {"Idempotency-Key": "c1"})[0] == 404
    assert call(node, conf, "POST", f"{one}/cancel", None, {"Idempotency-Key": "c1"})[0] == 409
    assert call(node, conf, "POST", f"{two}/cancel", None, {"Idempotency-Key": "c1"})[0] == 422
    assert call(node, conf, "POST", f"{one}/cancel", [1])[0] == 400
    assert call(node, conf, "POST", f"{one}/cancel", None, {"Content-Type": "text/plain"}, b"x")[0] == 415
    assert call(node, conf, "POST", f"{one}/cancel", {"pad": "x" * 20_000})[0] == 413
    assert call(node, conf, "GET", f"{one}/cancel")[0] == 405
    assert call(node, conf, "GET", f"{one}/pay")[0] == 405
    assert call(node, conf, "DELETE", one)[0] == 405
    assert call(node, conf, "POST", "/v1/sales/c/audit", {}, ADMIN)[0] == 405

    status, held = call(node, conf, "POST", orders, {"user_id": "u4", "qty": 1})
    assert status == 201
    status, audit = call(node, conf, "GET", "/v1/sales/c/audit", None, ADMIN)
    assert status == 200 and len(audit["sold"]) == 1 and len(audit["holds"]) == 1
    assert audit["released"] == [{"order_id": second["order_id"], "qty": 1}]  # the cancelled hold
    assert call(node, conf, "GET", "/v1/sales/c/audit")[0] == 401
    assert call(node, conf, "GET", "/v1/sales/none/audit", None, ADMIN)[0] == 404
    assert call(node, conf, "GET", "/v1/sales/a.b/audit", None, ADMIN)[0] == 400
    assert wait_past(held["expires_ms"])
    assert call(node, conf, "POST", f"{orders}/{held['order_id']}/pay")[0] == 409  # hold_expired
    assert call(node, conf, "POST", "/v1/health")[0] == 405
    assert call(node, conf, "PUT", "/v1/openapi.yaml", {})[0] == 405
    exercise_refund(node, conf, one, two)
    exercise_profiles(node, conf)
    exercise_payment_deduct(node, conf)
    exercise_buckets(node, conf)


def exercise_buckets(node: BackendNode, conf: Conformance) -> None:
    """A pre_deduct_buckets sale's counters and audit (with its buckets) fit the same schemas."""
    sale = {"stock": 4, "hold_ttl_ms": 5000, "strategy": "pre_deduct_buckets", "buckets": 2}
    status, body = call(node, conf, "PUT", "/v1/sales/b", sale, ADMIN)
    assert (status, body["buckets"]) == (200, 2)
    status, order = call(node, conf, "POST", "/v1/sales/b/orders", {"user_id": "u1", "qty": 3})
    assert status == 201
    assert call(node, conf, "GET", f"/v1/sales/b/orders/{order['order_id']}")[0] == 200
    assert call(node, conf, "POST", f"/v1/sales/b/orders/{order['order_id']}/pay")[0] == 200
    status, audit = call(node, conf, "GET", "/v1/sales/b/audit", None, ADMIN)
    assert status == 200 and sum(b["sold"] for b in audit["buckets"]) == audit["counters"]["sold"] == 3
    status, other = call(node, conf, "POST", "/v1/sales/b/orders", {"user_id": "u2", "qty": 1})
    assert call(node, conf, "POST", f"/v1/sales/b/orders/{other['order_id']}/cancel")[0] == 200
    status, audit = call(node, conf, "GET", "/v1/sales/b/audit", None, ADMIN)
    assert audit["released"] == [{"order_id": other["order_id"], "qty": 1}]  # the bucket's, in the sale's audit
    assert call(node, conf, "PUT", "/v1/sales/b", {**sale, "strategy": "pre_deduct"}, ADMIN)[0] == 400  # buckets


def exercise_refund(node: BackendNode, conf: Conformance, paid: str, cancelled: str) -> None:
    key = {"Idempotency-Key": "r1"}
    status, body = call(node, conf, "POST", f"{paid}/refund", None, ADMIN | key)
    assert (status, body["status"]) == (200, "refunded")
    assert call(node, conf, "POST", f"{cancelled}/refund", None, ADMIN | key)[0] == 422
    assert call(node, conf, "POST", f"{cancelled}/refund", None, ADMIN)[0] == 409  # not_refundable
    assert call(node, conf, "POST", f"{paid}/pay")[0] == 409  # order_refunded
    assert call(node, conf, "POST", f"{paid}/refund")[0] == 401
    assert call(node, conf, "POST", f"{paid}/refund", None, ADMIN | {"Idempotency-Key": "a b"})[0] == 400
    assert call(node, conf, "POST", "/v1/sales/c/orders/999/refund", None, ADMIN)[0] == 404
    assert call(node, conf, "GET", f"{paid}/refund", None, ADMIN)[0] == 405
    assert call(node, conf, "POST", f"{paid}/refund", {"pad": "x" * 20_000}, ADMIN)[0] == 413
    assert call(node, conf, "POST", f"{paid}/refund", None, ADMIN | {"Content-Type": "text/plain"}, b"x")[0] == 415
    status, audit = call(node, conf, "GET", "/v1/sales/c/audit", None, ADMIN)
    assert len(audit["refunds"]) == len(audit["compensations"]) == 1 and audit["refunded_sold"] == 1


def exercise_profiles(node: BackendNode, conf: Conformance) -> None:
    path = "/v1/sales/c/profiles"
    profile = {"account_age_days": 1, "past_purchases": 0, "activity_score": 0.0, "membership_age_days": 0}
    status, body = call(node, conf, "PUT", path, {"profiles": {"bot": profile}}, ADMIN)
    assert (status, body["profiles"]) == (200, 1)
    assert call(node, conf, "PUT", path, {"profiles": {"bot": {}}}, ADMIN)[0] == 400
    assert call(node, conf, "PUT", path, {"profiles": {}})[0] == 401
    assert call(node, conf, "PUT", "/v1/sales/none/profiles", {"profiles": {}}, ADMIN)[0] == 404
    assert call(node, conf, "GET", path, None, ADMIN)[0] == 405
    assert call(node, conf, "PUT", path, {"pad": "x" * 20_000}, ADMIN)[0] == 413
    assert call(node, conf, "PUT", path, None, ADMIN | {"Content-Type": "text/plain"}, b"x")[0] == 415
    sale = {"stock": 5, "hold_ttl_ms": 1000, "strategy": "order_deduct", "scalper_policy": {}, "per_user_limit": 1,
            "profiles": {"bot": profile}, "warn_thresholds": [4]}
    assert call(node, conf, "PUT", "/v1/sales/c", sale, ADMIN)[0] == 200
    orders = "/v1/sales/c/orders"
    assert call(node, conf, "POST", orders, {"user_id": "bot", "qty": 1})[0] == 409  # risk_rejected
    status, order = call(node, conf, "POST", orders, {"user_id": "human", "qty": 1})
    assert status == 201 and order["expires_ms"] is None
    assert call(node, conf, "POST", orders, {"user_id": "human", "qty": 1})[0] == 409  # limit_exceeded
    status, audit = call(node, conf, "GET", "/v1/sales/c/audit", None, ADMIN)
    assert audit["holds"][0]["expires_ms"] is None and len(audit["warnings"]) == 1


def exercise_payment_deduct(node: BackendNode, conf: Conformance) -> None:
    """Two payers for the last unit: one ships, one is refunded (409 with its refund and coupon)."""
    sale = {"stock": 1, "hold_ttl_ms": 1000, "strategy": "payment_deduct", "payment_delay_ms": 200}
    assert call(node, conf, "PUT", "/v1/sales/d", sale, ADMIN)[0] == 200
    ids = [call(node, conf, "POST", "/v1/sales/d/orders", {"user_id": f"u{i}", "qty": 1})[1]["order_id"]
           for i in range(2)]
    results: list = [None, None]
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(
        i, call(node, conf, "POST", f"/v1/sales/d/orders/{ids[i]}/pay"))) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(status for status, _ in results) == [200, 409]
    refused = next(body for status, body in results if status == 409)["error"]
    assert refused["refunded"] is True and refused["compensation"]["kind"] == "coupon"
    status, audit = call(node, conf, "GET", "/v1/sales/d/audit", None, ADMIN)
    assert (len(audit["payments"]), len(audit["refunds"]), len(audit["sold"])) == (2, 1, 1)


def exercise_unavailable(conf: Conformance, tmp_path: Path, admin_token: str) -> None:
    node = BackendNode.start(f"redis://127.0.0.1:{free_port()}/0", name="no-redis", admin_token=admin_token,
                             log_dir=tmp_path, extra_args=("--redis-timeout-ms", "300"))
    try:
        sale = {"stock": 1, "hold_ttl_ms": 10, "strategy": "pre_deduct"}
        assert call(node, conf, "PUT", "/v1/sales/u", sale, ADMIN)[0] == 503
        assert call(node, conf, "GET", "/v1/sales/u")[0] == 503
        assert call(node, conf, "POST", "/v1/sales/u/orders", {"user_id": "u", "qty": 1})[0] == 503
        assert call(node, conf, "GET", "/v1/sales/u/orders/1")[0] == 503
        assert call(node, conf, "POST", "/v1/sales/u/orders/1/pay")[0] == 503
        assert call(node, conf, "POST", "/v1/sales/u/orders/1/cancel")[0] == 503
        assert call(node, conf, "GET", "/v1/sales/u/audit", None, ADMIN)[0] == 503
        assert call(node, conf, "POST", "/v1/sales/u/orders/1/refund", None, ADMIN)[0] == 503
        assert call(node, conf, "PUT", "/v1/sales/u/profiles", {"profiles": {}}, ADMIN)[0] == 503
    finally:
        node.stop()


CHANGES = ("restock", "in_transit", "receive")


def exercise_warehouse(live: BackendNode, conf: Conformance, tmp_path: Path, admin_token: str) -> None:
    """Asynchronous orders, and the warehouse ledger: nodes with one, without one, and with Redis down."""
    sale = {"stock": 2, "hold_ttl_ms": 30_000, "strategy": "pre_deduct", "async_orders": True}
    status, body = call(live, conf, "PUT", "/v1/sales/q", sale, ADMIN)
    assert status == 200 and body["async_orders"] is True and body["queued"] == 0
    status, order = call(live, conf, "POST", "/v1/sales/q/orders", {"user_id": "u", "qty": 1})
    assert (status, order["status"]) == (202, "pending")
    assert call(live, conf, "GET", f"/v1/sales/q/orders/{order['order_id']}")[1]["status"] == "pending"
    assert call(live, conf, "POST", f"/v1/sales/q/orders/{order['order_id']}/pay")[0] == 409  # order_pending
    assert call(live, conf, "GET", "/v1/sales/q")[1]["queued"] == 1
    for change in CHANGES:  # no ledger on this node: every change is refused, after the usual checks
        path = f"/v1/sales/q/{change}"
        status, body = call(live, conf, "POST", path, {"qty": 1}, ADMIN)
        assert (status, body["error"]["code"]) == (409, "no_ledger")
        assert call(live, conf, "POST", path, {"qty": 0}, ADMIN)[0] == 400
        assert call(live, conf, "POST", path, {"qty": 1})[0] == 401
        assert call(live, conf, "GET", path, None, ADMIN)[0] == 405
        assert call(live, conf, "POST", path, {"qty": 1, "pad": "x" * 20_000}, ADMIN)[0] == 413
        assert call(live, conf, "POST", path, None, ADMIN | {"Content-Type": "text/plain"}, b"x")[0] == 415

    node = BackendNode.start(live.redis_url, name="with-ledger", admin_token=admin_token, log_dir=tmp_path,
                             extra_args=("--ledger", str(tmp_path / "ledger.sqlite3")))
    try:
        sale = {"stock": 1, "hold_ttl_ms": 30_000, "strategy": "pre_deduct_ledger"}
        status, body = call(node, conf, "PUT", "/v1/sales/w", sale, ADMIN)
        assert status == 200 and body["warehouse"]["stock"] == 1
        status, order = call(node, conf, "POST", "/v1/sales/w/orders", {"user_id": "u", "qty": 1})
        assert call(node, conf, "POST", f"/v1/sales/w/orders/{order['order_id']}/pay")[0] == 200
        status, audit = call(node, conf, "GET", "/v1/sales/w/audit", None, ADMIN)
        assert audit["ledger"]["sold_orders"] == [{"order_id": order["order_id"], "qty": 1}]
        for change in CHANGES:
            assert call(node, conf, "POST", f"/v1/sales/none/{change}", {"qty": 1}, ADMIN)[0] == 404
        assert call(node, conf, "POST", "/v1/sales/w/receive", {"qty": 1}, ADMIN)[0] == 409  # not_in_transit
        for change, stock in (("restock", 3), ("in_transit", 3), ("receive", 5)):
            status, body = call(node, conf, "POST", f"/v1/sales/w/{change}", {"qty": 2}, ADMIN)
            assert (status, body["warehouse"]["stock"]) == (200, stock)
        status, body = call(node, conf, "GET", "/v1/sales/w")
        assert body["warehouse"] == {"stock": 5, "sold": 1, "in_transit": 0, "refused": 0}
        assert body["sync_lag_ms"] >= 0  # no sync worker here: the changes wait in the outbox
        bucketed = {"stock": 4, "hold_ttl_ms": 30_000, "strategy": "pre_deduct_buckets", "buckets": 2}
        status, body = call(node, conf, "PUT", "/v1/sales/bucketed", bucketed, ADMIN)
        assert (status, body["error"]["code"]) == (409, "not_synced")  # well-formed, but not on this node
        assert call(node, conf, "GET", "/v1/sales/bucketed")[0] == 404  # and nothing was written
    finally:
        node.stop()

    dead = BackendNode.start(f"redis://127.0.0.1:{free_port()}/0", name="ledger-no-redis", admin_token=admin_token,
                             log_dir=tmp_path, extra_args=("--redis-timeout-ms", "300",
                                                           "--ledger", str(tmp_path / "ledger.sqlite3")))
    try:
        for change in CHANGES:
            assert call(dead, conf, "POST", f"/v1/sales/w/{change}", {"qty": 1}, ADMIN)[0] == 503
    finally:
        dead.stop()
