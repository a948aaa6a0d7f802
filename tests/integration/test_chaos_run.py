"""The chaos parts of a run: scenario faults and their schedule (pure), the fault log (pure), the
proxy, sync and Sentinel drivers on real processes, and the per-run state files and their sweep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import redis

from oversold.chaos.leftovers import RunState, sweep_dead_runs
from oversold.chaos.nemesis import Nemesis
from oversold.chaos.process import ProcessDriver
from oversold.chaos.proxy import FaultProxy, listen_port
from oversold.chaos.proxy_driver import ProxyDriver
from oversold.chaos.sentinel import SentinelTopology
from oversold.chaos.sentinel_driver import SentinelDriver
from oversold.chaos.sync_driver import SyncDriver
from oversold.errors import FaultSpecError, ScenarioError
from oversold.infra.procs import Child, port_open
from oversold.model.fault import Fault
from oversold.model.scenario_file import parse_scenario


def problems(data: dict) -> list[str]:
    with pytest.raises(ScenarioError) as e:
        parse_scenario(data)
    return e.value.problems


# -- the scenario's faults and topology (pure) ----------------------------------------------


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
