"""The contract document is valid OpenAPI 3.1, and the real backend answers as it says."""

from __future__ import annotations

import json
import re

import jsonschema_rs
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from openapi_util import DOC, METHODS, deref

def test_the_document_is_valid_openapi_3_1():
    validate(DOC)
    assert DOC["openapi"].startswith("3.1")
    assert DOC["info"]["version"] == "1"


def test_every_error_code_of_the_spec_is_in_the_document():
    codes = set(DOC["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"])
    assert codes == {
        "bad_request", "unsupported_media_type", "payload_too_large", "unauthorized", "unknown_sale",
        "unknown_order", "not_found", "method_not_allowed", "sold_out", "limit_exceeded", "hold_expired",
        "order_cancelled", "already_paid", "idempotency_conflict", "unavailable",
        "risk_rejected", "order_refunded", "not_refundable",
        "order_pending", "not_in_transit", "no_ledger", "not_synced",
    }


def operations() -> list[tuple[str, str, dict]]:
    return [(method, path, op) for path, item in DOC["paths"].items() for method, op in item.items()
            if method in METHODS]


def test_admin_operations_and_their_401_go_together():
    """An operation needs the bearer token exactly when it documents 401 (a fuzzer sends the token by these)."""
    for method, path, op in operations():
        assert bool(op.get("security")) == ("401" in op["responses"]), (method, path)
    assert DOC["components"]["securitySchemes"]["admin"] == {
        "type": "http", "scheme": "bearer", "description": DOC["components"]["securitySchemes"]["admin"]["description"]}


def test_every_link_names_an_operation_its_parameters_and_a_field_of_the_answer():
    by_id = {op["operationId"]: (path, item, op) for path, item in DOC["paths"].items()
             for method, op in item.items() if method in METHODS}
    seen = set()
    for method, path, op in operations():
        for status, response in op["responses"].items():
            response = deref(response)
            for name, link in response.get("links", {}).items():
                link = deref(link)
                target_path, target_item, target = by_id[link["operationId"]]
                params = {deref(p)["name"] for p in target_item.get("parameters", []) + target.get("parameters", [])
                          if deref(p)["in"] == "path"}
                assert set(link["parameters"]) == params, (op["operationId"], name)
                schema = deref(response["content"]["application/json"]["schema"])
                for expression in link["parameters"].values():
                    field = expression.removeprefix("$response.body#/")
                    assert field in schema["properties"] and field in schema["required"], (op["operationId"], field)
                seen.add((op["operationId"], link["operationId"]))
    # the flows a stateful fuzzer walks: a sale to its orders, an order to its read, pay, cancel and refund
    assert {("putSale", "placeOrder"), ("putSale", "getSale"), ("putSale", "audit"), ("placeOrder", "getOrder"),
            ("placeOrder", "payOrder"), ("placeOrder", "cancelOrder"), ("placeOrder", "refundOrder"),
            ("payOrder", "refundOrder")} <= seen


def schema_accepts(schema: dict, value) -> bool:
    """As a JSON Schema validator with ECMA-262 regexes (the spec's) judges: Python's ``re`` lets ``$``
    match before a final newline, so the jsonschema package would take ``"u\\n"`` for a user id."""
    return jsonschema_rs.Draft202012Validator({**schema, "components": DOC["components"]}).is_valid(value)


def test_the_document_states_the_backends_own_rules():
    """Where the backend checks a request field, the document's schema says the same, value for value."""
    from oversold.model.scenario import STRATEGIES
    from reference_backend import validate as v
    from reference_backend.errors import ApiError
    from reference_backend.policy import MAX_PROFILES
    from reference_backend.strategies import discover
    from reference_backend.webhook import WEBHOOK_URL_PATTERN, webhook_url_field

    schemas = DOC["components"]["schemas"]
    config = schemas["SaleConfig"]["properties"]
    assert set(config["strategy"]["enum"]) == set(discover()) == set(STRATEGIES)
    assert config["warn_webhook_url"]["pattern"] == WEBHOOK_URL_PATTERN
    assert schemas["Profiles"]["maxProperties"] == MAX_PROFILES
    assert schemas["QtyRequest"]["properties"]["qty"]["maximum"] == v.MAX_INT
    for name, regex in (("SaleId", v.SALE_ID_RE), ("OrderId", v.ORDER_ID_RE), ("IdempotencyKey", v.IDEM_KEY_RE)):
        where = schemas if name in schemas else DOC["components"]["parameters"]
        pattern = (where[name].get("schema") or where[name])["pattern"]
        assert pattern == "^" + regex.pattern.removesuffix("\\Z") + "$", name

    def backend_takes(check, value) -> bool:
        try:
            check(value)
            return True
        except ApiError:
            return False

    users = ["u", "u\n", "x" * 128, "x" * 129, "", "a b", "a\tb", "a\nb", "a\x00", "a\x7f", "a\x80", "ü-名", "a\u2028b"]
    for user in users:
        assert schema_accepts(schemas["UserId"], user) == backend_takes(
            lambda u: v.user_id_field({"user_id": u}), user), repr(user)
    urls = ["http://127.0.0.1:9000/hook", "http://localhost/", "http://[::1]:80/a?b=1", "http://127.255.0.1",
            "http://127.0.0.1:65535/", "http://127.0.0.1:65536/", "http://127.0.0.1:0/", "http://10.0.0.1/",
            "https://127.0.0.1/", "http://localhost/\n", "http://localhost/a b", "", "http://u:p@127.0.0.1/"]
    for url in urls:
        assert schema_accepts(config["warn_webhook_url"], url) == backend_takes(
            lambda u: webhook_url_field({"warn_webhook_url": u}), url), repr(url)
    for qty in (1, 2.0, 1.5, 0, 10**9, 10**9 + 1, True, "1", None):
        assert schema_accepts(schemas["QtyRequest"], {"qty": qty}) == backend_takes(
            lambda q: v.int_field({"qty": q}, "qty", minimum=1), qty), repr(qty)
