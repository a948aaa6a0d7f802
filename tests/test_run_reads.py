"""The orchestrator's reads through the adapter: any node that answers, and the counter timeline."""

from __future__ import annotations

import json

from backend_util import wait_for

from oversold.adapters.contract import ContractAdapter
from oversold.adapters.outcome import Outcome
from oversold.infra.procs import free_port
from oversold.model.scenario_file import parse_scenario
from oversold.orchestrate.run import AnyNode
from oversold.orchestrate.sampler import CounterSampler, read_timeline


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


def test_the_sampler_writes_counters_and_gaps(tmp_path):
    answers = iter([
        Outcome("ok", 200, None, {"available": 5, "held": 1, "sold": 4, "strategy": "pre_deduct", "async": True}),
        Outcome("info", 503, "unavailable", None),
        Outcome("info", 0, None, None, ConnectionRefusedError()),
    ])
    last = Outcome("ok", 200, None, {"available": 0, "held": 0, "sold": 10})
    path = tmp_path / "timeline.jsonl"
    sampler = CounterSampler(lambda sale_id: next(answers, last), "s", path, interval_s=0.01).start()
    try:
        assert wait_for(lambda: sampler.samples >= 4, timeout=5)
    finally:
        sampler.stop()
    samples = read_timeline(path)
    fields = [{k: v for k, v in s.items() if k != "t"} for s in samples]
    assert fields[:4] == [{"available": 5, "held": 1, "sold": 4}, {"error": "HTTP 503"},
                          {"error": "ConnectionRefusedError"}, {"available": 0, "held": 0, "sold": 10}]
    assert all(isinstance(s["t"], float) for s in samples)
    assert json.loads(path.read_text().splitlines()[0])["available"] == 5
