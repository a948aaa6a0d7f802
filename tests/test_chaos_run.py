"""The chaos parts of a run: scenario faults and their schedule (pure), the fault log (pure), the
proxy, sync and Sentinel drivers on real processes, and the per-run state files and their sweep."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

import pytest
import redis
import yaml

from oversold.chaos.driver import Hit
from oversold.chaos.leftovers import RunState, sweep_dead_runs
from oversold.chaos.nemesis import Nemesis, TimelineEvent
from oversold.chaos.process import ProcessDriver
from oversold.chaos.proxy import FaultProxy, listen_port
from oversold.chaos.proxy_driver import ProxyDriver
from oversold.chaos.runner import fault_periods
from oversold.chaos.sentinel import SentinelTopology
from oversold.chaos.sentinel_driver import SentinelDriver
from oversold.chaos.sync_driver import SyncDriver
from oversold.errors import FaultSpecError, ScenarioError
from oversold.infra.procs import Child, port_open
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
    assert expected_roles(base) == {"backend": 3, "redis-primary": 1}
    full = parse_scenario({"backend": {"nodes": 2}, "redis": {"topology": "sentinel"},
                           "sale": {"strategy": "pre_deduct_ledger"}})
    assert expected_roles(full) == {"backend": 2, "redis-primary": 1, "sentinel": 3, "sync": 1}
    assert expected_roles(parse_scenario({"redis": {"proxy": True}})) == {"backend": 2, "redis-primary": 1, "proxy": 2}


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


def test_proxy_driver_adds_and_removes_its_own_toxics(redis_server, tmp_path):
    with FaultProxy.start(log_dir=tmp_path) as fp:
        ports = [listen_port(fp.client.create(f"n{i}", upstream=f"127.0.0.1:{redis_server.port}")) for i in (1, 2)]
        driver = ProxyDriver(fp.client)
        for i in (1, 2):
            driver.register("proxy", f"n{i}")
        with Nemesis(driver) as nemesis:
            lat = nemesis.inject(Fault("toxic", "proxy", (0,), params={
                "type": "latency", "attributes": {"latency": 150}}))
            down = nemesis.inject(Fault("down", "proxy", (1,)))
            assert [t["name"] for t in fp.client.toxics("n1")] == [f"oversold-{lat.id}"]
            assert not port_open(ports[1])
            r = redis.Redis(port=ports[0], socket_timeout=2)
            t0 = time.monotonic()
            r.ping()
            assert time.monotonic() - t0 >= 0.14
            r.close()
            nemesis.heal(down)
            assert port_open(ports[1])
            fp.client.reset()  # somebody healed it already: the heal is still fine
        assert fp.client.toxics("n1") == [] and fp.client.toxics("n2") == []
        with pytest.raises(FaultSpecError):
            driver.inject(Fault("toxic", "proxy", (0,), params={"type": "latency", "attributes": {"nope": 1}}))


def test_sync_driver_sets_and_restores_the_workers_keys(redis_url, tmp_path):
    sleeper = Child.start([sys.executable, "-c", "import time; time.sleep(60)"], name="fake-sync", log_dir=tmp_path)
    procs = ProcessDriver(settle_s=0.2)
    procs.register("sync", sleeper)
    client = redis.Redis.from_url(redis_url)
    client.set("k:delay", "250")  # what the scenario set before the fault: put back on heal
    driver = SyncDriver(client, delay_key="k:delay", stall_key="k:stall", processes=procs)
    try:
        with Nemesis(driver) as nemesis:
            d = nemesis.inject(Fault("delay", "sync", (0,), params={"delay_ms": 1500}))
            s = nemesis.inject(Fault("stall", "sync", (0,)))
            assert client.get("k:delay") == b"1500" and client.get("k:stall") == b"1"
            nemesis.heal(d)
            assert client.get("k:delay") == b"250"
            k = nemesis.inject(Fault("kill", "sync", (0,)))
            assert not sleeper.alive() and k.hits[0].ident == str(sleeper.pid)
        assert client.get("k:stall") is None  # healed at the end
        assert procs.child("sync").alive() and procs.child("sync").pid != sleeper.pid
    finally:
        procs.stop_all()
        client.close()
    with pytest.raises(FaultSpecError):
        driver.inject(Fault("delay", "sync", (0,), params={"delay_ms": "soon"}))


def test_sentinel_driver_kills_whoever_is_primary(tmp_path):
    with SentinelTopology.start(log_dir=tmp_path) as topo:
        driver = SentinelDriver(topo, failover_timeout_s=20)
        first = topo.primary()
        with Nemesis(driver) as nemesis:
            inj = nemesis.inject(Fault("kill", "redis-primary", (0,)))
            assert inj.hits[0].name == topo.node_at(first).name
            nemesis.heal(inj)  # waits for the failover, then the old primary is back as a replica
            second = topo.primary()
            assert second != first and SentinelTopology.role(first) == "slave"
            nemesis.inject(Fault("failover", "redis-primary", (0,)))  # a promotion without a crash
            assert topo.primary() == first


# -- state files and the sweep ----------------------------------------------------------------


def test_a_live_runs_state_is_left_alone_and_a_dead_ones_is_swept(tmp_path):
    live = RunState.open("live", directory=tmp_path)
    child = Child.start([sys.executable, "-c", "import time; time.sleep(60)"], name="left", log_dir=tmp_path)
    live.state.record_child(child)
    assert sweep_dead_runs(directory=tmp_path) == []  # its owner (this process) is alive
    assert child.alive()
    # the same files, owned by a process that is gone
    dead_owner = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    owner = json.loads(live.owner_path.read_text())
    live.owner_path.write_text(json.dumps({**owner, "pid": int(dead_owner.stdout)}))
    [report] = sweep_dead_runs(directory=tmp_path)
    assert report.stopped == [child.pid]
    child.popen.wait(timeout=5)
    assert list(tmp_path.glob("*.json*")) == []


def test_finish_keeps_only_what_still_runs(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run = RunState.open("r1", directory=tmp_path / "state", run_dir=run_dir)
    done = Child.start([sys.executable, "-c", "pass"], name="done", log_dir=tmp_path)
    stays = Child.start([sys.executable, "-c", "import time; time.sleep(60)"], name="stays", log_dir=tmp_path)
    run.state.record_child(done)
    run.state.record_child(stays)
    done.popen.wait()
    try:
        run.finish()
        assert [e["pid"] for e in run.state.entries()] == [stays.pid]
        assert run.owner_path.exists()
        assert len((run_dir / "processes.jsonl").read_text().splitlines()) == 2
    finally:
        stays.stop()
    run.finish()
    assert not run.state.path.exists() and not run.owner_path.exists()
    assert os.listdir(tmp_path / "state") == []
