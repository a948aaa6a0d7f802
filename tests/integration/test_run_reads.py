"""The orchestrator's reads through the adapter: any node that answers, and the counter timeline."""

from __future__ import annotations

from oversold.adapters.contract import ContractAdapter
from oversold.infra.procs import free_port
from oversold.model.scenario_file import parse_scenario
from oversold.orchestrate.run import AnyNode


def test_any_node_reads_from_the_node_that_answers(backend, admin_token):
    dead = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    nodes = AnyNode(ContractAdapter(admin_token=admin_token), [dead, backend[0].url])
    scenario = parse_scenario({"sale": {"id": "reads", "stock": 9, "hold_ttl_ms": 1000}})
    try:
        refused = nodes.setup_sale(scenario)  # on the first node: the dead one
        assert refused is not None and refused.status == 0 and isinstance(refused.error, ConnectionRefusedError)
        nodes.clients.reverse()
        created = nodes.setup_sale(scenario)
        assert created is not None and created.type == "ok", created
        nodes.clients.reverse()  # the dead node first again: reads go past it
        counters = nodes.counters("reads")
        assert counters is not None and (counters["available"], counters["sold"]) == (9, 0)
        audit = nodes.audit("reads")
        assert audit is not None and audit["counters"]["stock"] == 9
        assert nodes.counters("no-such-sale") is None
        missing = nodes.read_counters("no-such-sale")
        assert (missing.type, missing.status) == ("fail", 404)
    finally:
        nodes.close()


def test_without_the_admin_token_the_audit_is_not_read(backend):
    nodes = AnyNode(ContractAdapter(admin_token="wrong"), [backend[0].url])
    try:
        assert nodes.audit("anything") is None
    finally:
        nodes.close()


