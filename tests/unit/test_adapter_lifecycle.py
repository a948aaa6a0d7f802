"""The adapter lifecycle, pure parts: options, declarations, the adapter's own read, a backend that died.

No sockets: fake readers and adapters (the end-to-end runs are tests/integration/test_examples.py).
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import pytest

from oversold.adapters.base import Adapter, Request, StateRead, load_adapter
from oversold.adapters.contract import ContractAdapter
from oversold.adapters.settle import OwnReader, settle_and_read, state_readers, unreachable
from oversold.adapters.shop import ShopAdapter
from oversold.analysis.judge import judge
from oversold.errors import BadInput, ScenarioError
from oversold.model.scenario_file import parse_scenario


class CountingShop(Adapter):
    """A single-step backend whose adapter reads the sold count itself (as from the user's database)."""

    name = "counting"
    evidence = "sold_count"
    single_step = True

    def __init__(self, admin_token: str | None = None, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(admin_token, options)
        self.reads = 0

    def buy(self, sale_id: str, user_id: str, qty: int, key: str) -> Request:
        return Request("POST", "/buy", {"item": sale_id, "user": user_id, "n": qty})

    def counters(self, sale_id: str) -> Request:
        return Request("GET", f"/items/{sale_id}")

    def read_state(self, sale_id: str) -> StateRead | None:
        self.reads += 1
        return StateRead(counters={"stock": self.options["stock"], "available": 0, "held": 0,
                                   "sold": self.options["stock"]})


def scenario(**backend: Any) -> Any:
    return parse_scenario({"sale": {"id": "s", "stock": 5, "hold_ttl_ms": 1000},
                           "checker": {"grace_ms": 0, "quiesce_timeout_s": 1}, "backend": backend})


def test_declarations_and_their_defaults():
    assert (Adapter.evidence, Adapter.idempotent_pay, Adapter.single_step) == ("per_order_audit", False, False)
    assert ContractAdapter.idempotent_pay and ContractAdapter.evidence == "per_order_audit"
    assert ShopAdapter.idempotent_pay  # the shop answers a repeated X-Request-Id with its first answer
    with pytest.raises(NotImplementedError, match="not single_step"):
        ContractAdapter().buy("s", "u", 1, "k")


def test_options_reach_the_adapter_and_an_old_style_adapter_still_loads():
    a = load_adapter(f"{__name__}:CountingShop", options={"stock": 5})
    assert a.options == {"stock": 5}
    assert load_adapter("oversold.adapters.shop:ShopAdapter").options == {}


class BadLevel(ContractAdapter):
    evidence: ClassVar[Any] = "rows"


def test_a_wrong_evidence_declaration_is_bad_input():
    with pytest.raises(BadInput, match=r"BadLevel.evidence is 'rows'"):
        load_adapter(f"{__name__}:BadLevel", source="backend.adapter")


def test_scenario_adapter_options_must_be_a_mapping():
    assert scenario(adapter_options={"db": "/tmp/x.db"}).backend.adapter_options == {"db": "/tmp/x.db"}
    with pytest.raises(ScenarioError, match="backend.adapter_options: must be a mapping"):
        scenario(adapter_options=["db"])


class _DeadNode:
    """A reader whose every request was refused, as AdapterClient records it."""

    base_url = "http://127.0.0.1:9"

    def __init__(self, error: BaseException | None) -> None:
        self.last_error = error

    def counters(self, sale_id: str) -> None:
        return None

    def audit(self, sale_id: str) -> None:
        return None


def test_settle_reads_through_the_adapters_own_read_first_and_writes_its_evidence():
    adapter = CountingShop(options={"stock": 5})
    pool = state_readers(adapter, [_DeadNode(None)])
    assert isinstance(pool[0], OwnReader)
    assert state_readers(ContractAdapter(), [_DeadNode(None)])[0].__class__ is _DeadNode
    final = settle_and_read(pool, scenario(), evidence=adapter.evidence)
    assert final.counters == {"stock": 5, "available": 0, "held": 0, "sold": 5} and adapter.reads >= 1
    assert final.extra["evidence"] == "sold_count" and "unreachable" not in final.extra


def test_a_backend_that_refuses_connections_is_said_to_be_down_in_the_summary():
    now = [0.0]
    final = settle_and_read([_DeadNode(ConnectionRefusedError(111, "Connection refused"))], scenario(),
                            clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert "refused connections" in final.extra["unreachable"]
    j = judge(scenario(), [], final, run_dir=None)
    assert "NOTE: the backend refused connections at the end of the run (http://127.0.0.1:9)" in j.summary
    assert j.exit_code == 2  # nothing to decide with: inconclusive, and now it says why
    # a timeout is not a refusal: no claim that the backend died
    assert unreachable([_DeadNode(TimeoutError("timed out"))]) is None


def test_a_backend_given_by_url_is_labelled_by_its_adapter_not_a_strategy_or_node_count():
    from oversold.analysis.html import _what_ran
    from oversold.model.history import FinalState

    own = scenario()
    assert own.backend_label == own.sale.strategy
    yours = scenario(url="http://127.0.0.1:9000", adapter="shop.adapters:MyShop")
    assert yours.backend_label == "MyShop"
    header = _what_ran(yours, FinalState(sale_id="s", stock=5, hold_ttl_ms=1000), None)
    assert "MyShop" in header and "backend <code>http://127.0.0.1:9000</code>" in header
    assert own.sale.strategy not in header and "nodes" not in header


def test_a_kind_the_mix_leaves_out_runs_no_user():
    defaults = scenario().swarm
    only_buyers = parse_scenario({"swarm": {"mix": {"buyer": 1}}}).swarm
    assert only_buyers.weight_of("buyer") == 1
    assert only_buyers.weight_of("hoarder") == 0 and only_buyers.weight_of("scalper") == 0
    assert only_buyers.weight_of("my_own_kind") is None  # a user's own class keeps its weight
    assert defaults.weight_of("hoarder") == defaults.mix["hoarder"]
