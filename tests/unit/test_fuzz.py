"""``oversold fuzz`` without a backend: its schemathesis config, the sales it makes, its hooks, its bad input."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from oversold.cli import main
from oversold.errors import BadInput
from oversold.fuzz import FuzzOptions, Prepared
from oversold.fuzz import hooks as fuzz_hooks
from oversold.fuzz.run import config_text, path_kind, sale_bodies


def test_the_config_is_strict_and_names_the_prepared_data():
    options = FuzzOptions("http://127.0.0.1:1", "secret", seed=7, max_examples=5)
    text = config_text(options, Prepared(("fz-a", "fz-b"), ("1-x", "2-y")))
    config = tomllib.loads(text)
    assert "secret" not in text  # the token comes from the environment
    assert config["auth"]["openapi"]["admin"]["bearer"] == "${OVERSOLD_ADMIN_TOKEN}"
    assert (config["seed"], config["generation"]["max-examples"], config["workers"]) == (7, 5, 1)
    assert config["warnings"]["fail-on"] is True
    assert config["dictionaries"]["sales"]["values"] == ["fz-a", "fz-b"]
    assert config["dictionaries"]["order_sale"]["values"] == ["fz-a"]
    assert config["dictionaries"]["orders"]["values"] == ["1-x", "2-y"]
    assert Path(config["hooks"]) == Path(fuzz_hooks.__file__)
    # a schema-valid request answered 400, or a schema-violating one answered 2xx, fails
    assert "400" not in config["checks"]["positive_data_acceptance"]["expected-statuses"]
    assert not any(s.startswith("2") for s in config["checks"]["negative_data_rejection"]["expected-statuses"])


def test_sales_are_one_per_strategy_and_bad_names_are_bad_input():
    sales = sale_bodies(("pre_deduct", "pre_deduct+async"))
    assert sales["fz-pre_deduct"]["strategy"] == "pre_deduct" and "async_orders" not in sales["fz-pre_deduct"]
    assert sales["fz-pre_deduct-async"]["async_orders"] is True
    for bad in (("pre deduct",), ("pre_deduct+later",), ()):
        with pytest.raises(BadInput, match="--strategies"):
            sale_bodies(bad)


@pytest.mark.parametrize(("method", "url", "kind"), [
    ("POST", "http://h/v1/sales/s/orders", "order"),
    ("GET", "http://h/v1/sales/s/orders/1-ab", "read"),
    ("POST", "http://h/v1/sales/s/orders/1-ab/pay", "pay"),
    ("POST", "http://h/v1/sales/s/orders/1-ab/cancel?x=1", "cancel"),
    ("POST", "http://h/v1/sales/s/orders/1-ab/refund", "refund"),
    ("GET", "http://h/v1/sales/s/orders", "other"),
    ("POST", "http://h/v1/sales/s/restock", "other"),
])
def test_path_kinds(method, url, kind):
    assert path_kind(method, url) == kind


def test_hooks_make_keys_unique_and_keep_malformed_ones():
    first, second = fuzz_hooks.fresh_key("k"), fuzz_hooks.fresh_key("k")
    assert first != second and fuzz_hooks.KEY.match(first)
    assert fuzz_hooks.fresh_key("a b") == "a b" and fuzz_hooks.fresh_key(7) == 7
    bodies = [{"payment_delay_ms": 60_000}, {"payment_delay_ms": 30_000.0}, {"payment_delay_ms": 60_001},
              {"payment_delay_ms": 10}, {"payment_delay_ms": True}, [1]]
    for body in bodies:
        fuzz_hooks.short_delay(body)
    assert bodies == [{"payment_delay_ms": 50}, {"payment_delay_ms": 50}, {"payment_delay_ms": 60_001},
                      {"payment_delay_ms": 10}, {"payment_delay_ms": True}, [1]]


def test_cli_needs_the_admin_token_and_good_options(monkeypatch, tmp_path, capsys):
    """Each is refused (exit 4) before a request is sent: this folder's guard fails any socket."""
    monkeypatch.delenv("OVERSOLD_ADMIN_TOKEN", raising=False)
    assert main(["fuzz", "http://127.0.0.1:1", "--out", str(tmp_path / "a")]) == 4
    assert "OVERSOLD_ADMIN_TOKEN is not set" in capsys.readouterr().err
    monkeypatch.setenv("OVERSOLD_ADMIN_TOKEN", "secret")
    assert main(["fuzz", "http://127.0.0.1:1", "--strategies", "x y", "--out", str(tmp_path / "b")]) == 4
    assert main(["fuzz", "http://127.0.0.1:1", "--max-examples", "0", "--out", str(tmp_path / "c")]) == 4
    assert main(["fuzz", "http://127.0.0.1:1", "--document", str(tmp_path / "none.yaml")]) == 4
