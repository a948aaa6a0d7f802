"""Adapters: the contract adapter, the example shop adapter against a real shop server, and a swarm
run through the shop adapter (no audit: the checker says what it could not decide).

The shop (``tests/shop_app.py``) is a real HTTP server in its own process, shaped nothing like the
contract. Nothing from Locust is imported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from swarm_util import shop_server

from oversold.adapters.base import Request, load_adapter
from oversold.adapters.contract import ContractAdapter
from oversold.adapters.settle import never_expiring_only, settle_and_read
from oversold.adapters.shop import ShopAdapter
from oversold.errors import BadInput
from oversold.model.history import FinalState
from oversold.model.scenario_file import parse_scenario

# -- pure ------------------------------------------------------------------------------


def test_contract_adapter_requests() -> None:
    a = ContractAdapter(admin_token="t")
    assert a.order("s/1", "u", 2, "k") == Request("POST", "/v1/sales/s%2F1/orders", {"user_id": "u", "qty": 2},
                                                  {"Idempotency-Key": "k"}, "order")
    assert a.pay("s", "o 1", "k2").path == "/v1/sales/s/orders/o%201/pay"
    assert a.pay("s", "1", "k2").body == {} and a.cancel("s", "1", "k3").headers == {"Idempotency-Key": "k3"}
    assert (a.read_order("s", "9").method, a.read_order("s", "9").name) == ("GET", "read order")
    assert a.counters("s").path == "/v1/sales/s"
    audit = a.audit("s")
    assert audit is not None and audit.headers == {"Authorization": "Bearer t"}
    setup = a.setup_sale("s", {"stock": 3})
    assert setup is not None and (setup.method, setup.body) == ("PUT", {"stock": 3})
    profiles = a.load_profiles("s", {"u": {"past_purchases": 0}})
    assert profiles is not None and profiles.body == {"profiles": {"u": {"past_purchases": 0}}}
    assert ContractAdapter().audit("s").headers == {}  # type: ignore[union-attr]  # no token, no header
    ok = a.outcome("order", 201, b'{"order_id": "7", "status": "held"}', None)
    assert (ok.type, ok.order_id) == ("ok", "7")


def test_shop_adapter_speaks_the_contract() -> None:
    a = ShopAdapter(admin_token="k")
    assert a.order("tea", "u1", 2, "r1") == Request("POST", "/shop/api/reserve", {"sku": "tea", "buyer": "u1",
                                                                                    "count": 2},
                                                    {"X-Request-Id": "r1"}, "order")
    assert a.audit("tea") is None and a.load_profiles("tea", {}) is None
    setup = a.setup_sale("tea", {"stock": 5, "hold_ttl_ms": 1500})
    assert setup is not None and setup.body == {"sku": "tea", "total": 5, "lock_seconds": 1.5}
    assert setup.headers == {"X-Admin-Key": "k"}

    held = a.outcome("order", 200, b'{"code": 0, "msg": "ok", "data": {"reservation": "R-1", "buyer": "u1", '
                                   b'"count": 2, "state": "LOCKED", "lock_until": 99}}', None)
    assert (held.type, held.order_id, held.body["status"], held.body["qty"]) == ("ok", "R-1", "held", 2)  # type: ignore[index]
    sold_out = a.outcome("order", 200, b'{"code": 1001, "msg": "sold out", "data": null}', None)
    assert (sold_out.type, sold_out.code, sold_out.locust_failure()) == ("fail", "sold_out", None)
    busy = a.outcome("pay", 200, b'{"code": 5000, "msg": "busy", "data": null}', None)
    assert (busy.type, busy.code) == ("info", "unavailable")  # may or may not have happened
    odd = a.outcome("pay", 200, b'{"code": 1234}', None)
    assert (odd.type, odd.code) == ("info", "shop_1234")  # an unknown refusal is not a definite one
    stock = a.outcome("counters", 200, b'{"code": 0, "data": {"total": 5, "free": 1, "locked": 2, "sold": 2}}', None)
    assert stock.body == {"stock": 5, "available": 1, "held": 2, "sold": 2}
    assert a.outcome("order", 200, b"<html>", None).type == "info"
    assert a.outcome("order", 401, b'{"code": 401}', None).type == "fail"
    assert a.outcome("order", 0, None, ConnectionRefusedError(111, "refused")).type == "fail"


def test_load_adapter() -> None:
    assert isinstance(load_adapter("oversold.adapters.shop:ShopAdapter", admin_token="x"), ShopAdapter)
    for bad in ("oversold.adapters.shop", "nope.nothing:X", "oversold.adapters.shop:CODES", "oversold.adapters.base:Request"):
        with pytest.raises(BadInput, match="--oversold-adapter"):
            load_adapter(bad)


class _Reader:
    """A fake ``StateReader``: counters from a script, one per call; audit fixed."""

    def __init__(self, held: list[int | None], audit: dict[str, Any] | None) -> None:
        self.held, self._audit, self.reads = held, audit, 0

    def counters(self, sale_id: str) -> dict[str, Any] | None:
        self.reads += 1
        h = self.held.pop(0) if len(self.held) > 1 else self.held[0]
        return None if h is None else {"available": 1, "held": h, "sold": 0, "stock": 1 + h}

    def audit(self, sale_id: str) -> dict[str, Any] | None:
        return self._audit


def _clock() -> tuple[Any, Any]:
    now = [0.0]
    return (lambda: now[0]), (lambda s: now.__setitem__(0, now[0] + s))


def test_settle_and_read_waits_for_holds_then_reads() -> None:
    scenario = parse_scenario({"sale": {"id": "s", "stock": 3, "hold_ttl_ms": 1000, "per_user_limit": 2},
                               "checker": {"grace_ms": 0, "quiesce_timeout_s": 5}})
    clock, sleep = _clock()
    reader = _Reader([None, 2, 2, 1, 0], {"now_ms": 5, "holds": [{"expires_ms": 9}], "sold": []})
    final = settle_and_read(reader, scenario, clock=clock, sleep=sleep)
    assert isinstance(final, FinalState) and final.counters == {"available": 1, "held": 0, "sold": 0, "stock": 1}
    assert clock() == pytest.approx(0.4)  # four polls of 100 ms: unreadable, 2, 2, 1, then 0
    assert final.read_ms == 5 and final.extra["sale"]["per_user_limit"] == 2

    # holds that never expire (order_deduct) are not waited for
    clock, sleep = _clock()
    stuck = settle_and_read(_Reader([4], {"now_ms": 1, "holds": [{"expires_ms": None}], "sold": []}), scenario,
                            clock=clock, sleep=sleep)
    assert stuck.counters["held"] == 4 and clock() < 0.2  # type: ignore[index]

    # nothing readable: bounded by ttl + grace + quiesce, and None for the checker
    clock, sleep = _clock()
    blind = settle_and_read([_Reader([None], None), _Reader([None], None)], scenario, clock=clock, sleep=sleep)
    assert (blind.counters, blind.audit, blind.read_ms) == (None, None, None)
    assert 6.0 <= clock() < 6.2
    assert never_expiring_only({"holds": []}) and not never_expiring_only(None)


# -- against the real shop server --------------------------------------------------------


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[str]:
    with shop_server(tmp_path) as url:
        yield url


