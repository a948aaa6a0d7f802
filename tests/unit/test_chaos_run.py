"""The chaos parts of a run: scenario faults and their schedule (pure), the fault log (pure), the
proxy, sync and Sentinel drivers on real processes, and the per-run state files and their sweep."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from oversold.chaos.driver import Hit
from oversold.chaos.nemesis import TimelineEvent
from oversold.chaos.runner import fault_periods
from oversold.errors import ScenarioError
from oversold.model.fault import Fault
from oversold.model.fault_spec import FaultSpec, expand
from oversold.model.roles import expected_roles, schedule
from oversold.model.scenario_file import dump_scenario, parse_scenario


def problems(data: dict) -> list[str]:
    with pytest.raises(ScenarioError) as e:
        parse_scenario(data)
    return e.value.problems


# -- the scenario's faults and topology (pure) ----------------------------------------------


def test_every_fault_problem_is_listed_with_its_path():
    got = problems({"faults": [
        {"action": "kill", "role": "backend", "every_s": [1, 2]},
        {"action": "toxic", "role": "proxy", "params": {"type": "latency", "attributes": {"latenc": 3}}},
        {"action": "zap", "role": "backend"},
        {"action": "kill", "role": "nobody"},
        {"action": "delay", "role": "sync", "params": {"delay_ms": -1}},
        {"action": "kill", "role": "backend", "start_s": -1, "colour": "red"},
        {"action": "kill", "role": "backend", "duration_s": 1, "every_s": [3, 1]},
    ], "chaos": {"driver": "kubernetes", "docker_label": "a=b"}})
    expected = [
        "chaos.driver: must be one of process, docker",
        "chaos.docker_label: must be a label key",
        "faults[0].every_s: a repeated fault needs duration_s",
        "faults[1].params.attributes: latency has no ['latenc']",
        "faults[2].action: backend takes kill, pause, restart, stop, got 'zap'",
        "faults[3].role: unknown role 'nobody'",
        "faults[4].params.delay_ms: required, an integer >= 0",
        "faults[5].colour: unknown field",
        "faults[5]: start_s: must be a number >= 0",
        "faults[6].every_s: must be [low, high] seconds with 0 < low <= high",
    ]
    for want in expected:
        assert any(p.startswith(want) for p in got), (want, got)


def test_faults_are_checked_against_the_topology():
    got = problems({"redis": {"topology": "sentinel", "proxy": True},
                    "faults": [{"action": "kill", "role": "sync"}, {"action": "kill", "role": "backend", "target": 5},
                               {"action": "toxic", "role": "proxy", "params": {"type": "down"}}]})
    assert "redis.proxy: the fault proxy needs one fixed upstream, so not with redis.topology: sentinel" in got
    assert any(p.startswith("faults[0].role: this run has no sync targets") for p in got)
    assert any(p.startswith("faults[1].target: fault kill backend: target index 5 out of range") for p in got)
    got = problems({"faults": [{"action": "failover", "role": "redis-primary"}], "redis": {"url": "redis://x:1/0"}})
    assert any("failover needs redis.topology: sentinel" in p for p in got)
    assert any("faults[0].role: this run has no redis-primary targets" in p for p in got)
    assert "chaos.driver: docker runs the harness's own Redis in a container; remove redis.url" in problems(
        {"chaos": {"driver": "docker"}, "redis": {"url": "redis://127.0.0.1:1/0"}})


def test_roles_follow_the_topology():
    base = parse_scenario({"backend": {"nodes": 3}})
    assert expected_roles(base) == {"backend": 3, "clock": 3, "redis-primary": 1}
    full = parse_scenario({"backend": {"nodes": 2}, "redis": {"topology": "sentinel"},
                           "sale": {"strategy": "pre_deduct_ledger"}})
    assert expected_roles(full) == {"backend": 2, "clock": 2, "redis-primary": 1, "sentinel": 3, "sync": 1}
    assert expected_roles(parse_scenario({"redis": {"proxy": True}})) == {
        "backend": 2, "clock": 2, "redis-primary": 1, "proxy": 2}
    queued = parse_scenario({"backend": {"nodes": 2, "order_workers": 3}, "sale": {"async_orders": True}})
    assert expected_roles(queued) == {"backend": 2, "clock": 2, "redis-primary": 1, "orders": 3}


def test_worker_and_clock_faults_are_checked_before_the_run():
    got = problems({"faults": [{"action": "kill", "role": "orders"}]})  # no async_orders: no processors
    assert any(p.startswith("faults[0].role: this run has no orders targets") for p in got), got
    got = problems({"faults": [{"action": "kill", "role": "orders"},
                               {"action": "clock_skew", "role": "clock", "params": {"offset_ms": "1m"}},
                               {"action": "clock_skew", "role": "clock"},
                               {"action": "kill", "role": "clock"}]})
    assert "faults[1].params.offset_ms: required, an integer (milliseconds, may be negative), got '1m'" in got
    assert "faults[2].params.offset_ms: required, an integer (milliseconds, may be negative), got None" in got
    assert "faults[3].action: clock takes clock_skew, got 'kill'" in got
    ok = {"sale": {"async_orders": True},
          "faults": [{"action": "pause", "role": "orders", "target": 1, "duration_s": 0.5, "every_s": [1, 2]},
                     {"action": "clock_skew", "role": "clock", "target": 0, "params": {"offset_ms": -90000}}]}
    assert parse_scenario(ok).faults[1].params == {"offset_ms": -90000}  # no problem to raise


def test_a_backend_given_by_url_has_no_harness_redis_to_hurt():
    host = {"url": "http://127.0.0.1:9"}
    assert expected_roles(parse_scenario({"backend": host})) == {}
    assert expected_roles(parse_scenario({"backend": host, "redis": {"url": "redis://127.0.0.1:1/0"}})) == {}
    got = problems({"backend": host, "redis": {"topology": "sentinel", "persistence": "aof"},
                    "chaos": {"driver": "docker"}, "faults": [{"action": "kill", "role": "redis-primary"}]})
    for field in ("redis.topology: sentinel", "chaos.driver: docker", "redis.persistence: aof"):
        assert f"{field}: the harness starts no Redis for a backend given by URL (backend.url / --host); " \
               "run it against the reference backend" in got, (field, got)
    assert any(p.startswith("faults[0].role: this run has no redis-primary targets (roles: none)") for p in got), got
    assert parse_scenario({"backend": host}).backend.url == host["url"]  # nothing else to refuse


def test_repeats_come_from_the_seed_and_stop_at_until():
    spec = FaultSpec("kill", "backend", "one", start_s=1.0, duration_s=0.5, every_s=(1.0, 2.0), until_s=8.0)
    a, b = expand([spec], seed=7, horizon_s=60), expand([spec], seed=7, horizon_s=60)
    assert a == b and len(a) >= 3
    assert all(x.start_s < 8.0 for x in a)
    gaps = [y.start_s - (x.start_s + 0.5) for x, y in zip(a, a[1:])]
    assert all(1.0 - 1e-6 <= g <= 2.0 + 1e-6 for g in gaps), gaps
    assert expand([spec], seed=8, horizon_s=60) != a
    # a fault added after it keeps its draws
    other = FaultSpec("pause", "backend", 0, start_s=3, duration_s=1, every_s=(1, 1))
    assert expand([spec, other], seed=7, horizon_s=60)[: len(a)] == a


def test_the_scenario_as_run_replays_the_same_schedule():
    s = parse_scenario({"seed": 3, "swarm": {"duration_s": 10}, "redis": {"proxy": True}, "faults": [
        {"action": "kill", "role": "backend", "target": "random", "start_s": 1, "duration_s": 1, "every_s": [1, 3]},
        {"action": "toxic", "role": "proxy", "target": "one", "start_s": 2,
         "params": {"type": "latency", "attributes": {"latency": 50}}},
    ]})
    planned = schedule(s)
    assert all(f.resolved and not isinstance(f.target, str) for f in planned)
    as_run = dataclasses.replace(s, faults=tuple(FaultSpec.of(f) for f in planned))
    again = parse_scenario(yaml.safe_load(dump_scenario(as_run)))
    assert schedule(again) == planned
    assert [f.start_s for f in planned] == sorted(f.start_s for f in planned)


def test_fault_log_pairs_injects_with_heals():
    f = Fault("kill", "backend", (1,), 2.0, 1.0)
    g = Fault("pause", "backend", (0,), 3.0, None)
    hit = Hit("backend", 1, "pid", "123", "node2")
    timeline = [
        TimelineEvent(10.0, "inject", "process", f, "process-1", (hit,)),
        TimelineEvent(10.5, "inject-error", "process", g, None, (), "did not come back"),
        TimelineEvent(11.0, "heal-error", "process", f, "process-1", (hit,), "boom"),
        TimelineEvent(11.2, "heal", "process", f, "process-1", (hit,)),
    ]
    rows = fault_periods(timeline)
    assert rows[0]["start"] == 10.0 and rows[0]["end"] == 11.2 and rows[0]["target"] == "node2"
    assert rows[0]["indices"] == [1] and "heal_error" not in rows[0]
    assert rows[1]["end"] == rows[1]["start"] == 10.5 and rows[1]["error"] == "did not come back"
    assert fault_periods(timeline[:1])[0]["end"] is None  # still active


# -- drivers on real processes ---------------------------------------------------------------


# -- state files and the sweep ----------------------------------------------------------------


