"""Node faults on real processes: the fault model, the nemesis, the process driver and the sweep.

Pure units (Fault, plan, Nemesis bookkeeping) use a recording driver; every
process test runs real ``redis-server`` children on free loopback ports and
checks them with real PINGs.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from oversold.chaos import (
    ChaosError,
    Fault,
    FaultSpecError,
    Nemesis,
    ProcessDriver,
    StateFile,
    sweep,
)
from oversold.infra.procs import Child, free_port
from oversold.infra.redis_server import RedisServer


def ping(port: int, timeout: float = 0.5) -> str:
    """``up``, ``down`` (refused) or ``timeout`` (accepted but never answered: paused)."""
    client = redis.Redis(port=port, socket_timeout=timeout, socket_connect_timeout=timeout,
                         retry=Retry(NoBackoff(), 0))
    try:
        return "up" if client.ping() else "no"
    except redis.TimeoutError:
        return "timeout"
    except redis.ConnectionError:
        return "down"
    finally:
        client.close()


def run_id(port: int) -> str:
    client = redis.Redis(port=port, socket_timeout=2)
    try:
        return client.info("server")["run_id"]
    finally:
        client.close()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state == "Z"


# -- pure: faults and the plan ------------------------------------------------------


# -- pure: the nemesis's bookkeeping, with a recording driver ---------------------------


# -- the process driver, on real redis-server processes ---------------------------------


@pytest.fixture
def servers(tmp_path):
    """Two real redis servers registered as role ``redis``; everything stopped at the end."""
    started = [RedisServer.start(log_dir=tmp_path / f"r{i}", name=f"redis{i}") for i in range(2)]
    driver = ProcessDriver(ready_timeout_s=10)
    for s in started:
        driver.register_redis("redis", s)
    yield driver, started
    for s in started:
        s.stop()
    driver.stop_all()


def test_kill_then_heal_restarts_on_the_same_port(servers):
    driver, (s0, s1) = servers
    before = s0.child.pid
    inj = driver.inject(Fault("kill", "redis", 0))
    assert inj.hits[0].ident == str(before) and inj.hits[0].kind == "pid"
    assert ping(s0.port) == "down" and gone(before)
    assert ping(s1.port) == "up"  # only the chosen target
    driver.heal(inj)
    assert ping(s0.port) == "up"
    assert s0.child.pid != before and driver.child("redis", 0) is s0.child  # the owner's handle follows
    driver.heal(inj)  # idempotent: no second restart
    assert s0.child.pid == driver.child("redis", 0).pid


def test_pause_times_out_then_heal_resumes(servers):
    driver, (s0, _) = servers
    inj = driver.inject(Fault("pause", "redis", 0))
    assert ping(s0.port, timeout=0.3) == "timeout"
    driver.heal(inj)
    assert ping(s0.port) == "up"
    driver.heal(inj)
    assert ping(s0.port) == "up"


def test_restart_is_a_new_process_on_the_same_port(servers):
    driver, (s0, _) = servers
    rid, pid = run_id(s0.port), s0.child.pid
    inj = driver.inject(Fault("restart", "redis", 0))
    assert ping(s0.port) == "up" and run_id(s0.port) != rid and gone(pid)
    driver.heal(inj)  # nothing to undo
    assert s0.child.alive()


def test_stop_then_heal_starts_it_again(servers):
    driver, (s0, s1) = servers
    inj = driver.inject(Fault("stop", "redis", "all"))
    assert [ping(s.port) for s in (s0, s1)] == ["down", "down"]
    driver.heal(inj)
    assert [ping(s.port) for s in (s0, s1)] == ["up", "up"]


def test_heal_of_a_replaced_node_does_nothing(servers):
    driver, (s0, _) = servers
    paused = driver.inject(Fault("pause", "redis", 0))
    killed = driver.inject(Fault("kill", "redis", 0))  # SIGKILL reaches a stopped process
    driver.heal(killed)
    new_pid = s0.child.pid
    driver.heal(paused)  # the paused process is gone; the new one must not be touched
    assert s0.child.pid == new_pid and ping(s0.port) == "up"


def test_process_driver_refuses_unknown_roles_actions_and_indices(servers):
    driver, _ = servers
    with pytest.raises(FaultSpecError, match="no targets for role"):
        driver.inject(Fault("kill", "backend", 0))
    with pytest.raises(FaultSpecError, match="unknown action"):
        driver.inject(Fault("latency", "redis", 0))
    with pytest.raises(FaultSpecError, match="out of range"):
        driver.inject(Fault("kill", "redis", 2))
    with pytest.raises(FaultSpecError, match="takes no params"):
        driver.inject(Fault("kill", "redis", 0, params={"signal": 9}))
    assert all(s.child.alive() for s in servers[1])  # nothing was done by a refused fault


def test_restart_that_does_not_come_back_is_an_error(tmp_path):
    child = Child.start([sys.executable, "-c", "import time; time.sleep(60)"], name="sleeper", log_dir=tmp_path)
    driver = ProcessDriver(ready_timeout_s=30)
    # the new process dies before it opens its port: found out when it dies, not after the timeout
    driver.register("sync", child, port=free_port(), restart=lambda: Child.start(
        [sys.executable, "-c", "raise SystemExit('no config')"], name="sleeper", log_dir=tmp_path))
    try:
        inj = driver.inject(Fault("kill", "sync", 0))
        t = time.monotonic()
        with pytest.raises(ChaosError, match="did not come back.*no config"):
            driver.heal(inj)
        assert time.monotonic() - t < 10
    finally:
        driver.stop_all()
        child.stop()


def test_nothing_is_left_after_heal_all_and_teardown(tmp_path):
    servers = [RedisServer.start(log_dir=tmp_path / f"r{i}", name=f"redis{i}") for i in range(2)]
    driver = ProcessDriver()
    for s in servers:
        driver.register_redis("redis", s)
    pids = {s.child.pid for s in servers}
    with Nemesis(driver) as nemesis:
        nemesis.inject(Fault("kill", "redis", 0))
        nemesis.inject(Fault("pause", "redis", 1))
        nemesis.inject(Fault("restart", "redis", 1))  # a new process while the pause is active
        pids |= {s.child.pid for s in servers}
    pids |= {s.child.pid for s in servers}  # the kill's heal made one more
    assert len(pids) == 4
    assert all(ping(s.port) == "up" for s in servers)
    assert nemesis.active == ()
    for s in servers:
        s.stop()
    driver.stop_all()
    assert all(gone(p) for p in pids)
    assert all(ping(s.port) == "down" for s in servers)


def test_restarts_are_recorded_in_the_state_file(tmp_path):
    state = StateFile(tmp_path / "state.jsonl")
    server = RedisServer.start(log_dir=tmp_path)
    state.record_child(server.child)
    driver = ProcessDriver(state=state)
    driver.register_redis("redis", server)
    first = server.child.pid
    try:
        driver.heal(driver.inject(Fault("kill", "redis", 0)))
        assert [e["pid"] for e in state.entries()] == [first, server.child.pid]
        assert state.entries()[1]["argv"] == server.child.argv
    finally:
        server.stop()


# -- the sweep ------------------------------------------------------------------


def test_sweep_stops_a_forgotten_process(tmp_path):
    state = StateFile(tmp_path / "state.jsonl")
    server = RedisServer.start(log_dir=tmp_path)  # redis rewrites its cmdline into a title
    pid, port = server.child.pid, server.port
    state.record_child(server.child)
    # serving: redis has set its title (it listens first, then rewrites its cmdline, then serves), so
    # the pause cannot catch it halfway through the rewrite, when its cmdline is neither argv nor title
    assert ping(port, timeout=5) == "up"
    os.kill(pid, signal.SIGSTOP)  # a paused leftover must go too
    popen, workdir = server.child.popen, server.workdir
    del server  # "forgotten": this run no longer holds a handle that would stop it
    try:
        report = sweep(state)
        assert (report.stopped, report.skipped, report.errors) == ([pid], [], [])
        popen.wait(timeout=5)  # it is our child here, so reap it; in real use init does
        assert gone(pid) and ping(port) == "down"
        assert not state.path.exists()  # nothing left to sweep next time
    finally:
        if popen.poll() is None:
            os.killpg(pid, signal.SIGKILL)
            popen.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def test_sweep_leaves_a_reused_pid_alone(tmp_path):
    state = StateFile(tmp_path / "state.jsonl")
    bystander = Child.start([sys.executable, "-c", "import time; time.sleep(60)"], name="bystander")
    try:
        # the pid is alive but is not what was recorded there: a different command line ...
        state.record_pid(bystander.pid, ["/usr/bin/redis-server", "--port", "6379"], name="redis", pgid=bystander.pid)
        # ... or the same command line with another start time (a pid reused by the same program)
        state._append({"kind": "pid", "pid": bystander.pid, "pgid": None, "argv": bystander.argv,
                       "name": "x", "start_ticks": 1})
        state.record_pid(2**22 + 12345, ["/bin/true"], name="long-gone")
        report = sweep(state)
        assert report.stopped == []
        assert bystander.alive()
        reasons = dict(report.skipped)
        assert "cmdline" in reasons[bystander.pid] and reasons[2**22 + 12345] == "gone"
    finally:
        bystander.stop()




def test_a_process_given_by_pid_is_paused_and_healed_then_killed_for_good(tmp_path):
    """The given-process driver (chaos.processes with a pid file): SIGSTOP / SIGCONT, and a SIGKILL whose
    heal does nothing (the harness cannot start it again); the dead pid is never signalled again."""
    from oversold.chaos.given import GivenProcessDriver
    from oversold.chaos.sweep import proc_stat
    from oversold.errors import ChaosError

    user = Child.start([sys.executable, "-c", "import time; time.sleep(60)"], name="user", log_dir=tmp_path)
    try:
        driver = GivenProcessDriver()
        driver.register("shop", user.pid)
        def state_becomes(stopped: bool) -> bool:  # a signal lands a moment after kill() returns
            deadline = time.monotonic() + 5
            while (proc_stat(user.pid)[0] == "T") != stopped and time.monotonic() < deadline:
                time.sleep(0.01)
            return (proc_stat(user.pid)[0] == "T") == stopped

        inj = driver.inject(Fault("pause", "shop", 0))
        assert state_becomes(stopped=True)
        driver.heal(inj)
        assert state_becomes(stopped=False)
        inj = driver.inject(Fault("kill", "shop", 0))
        assert user.popen.wait(timeout=5) == -signal.SIGKILL
        driver.heal(inj)  # nothing to start again
        assert not user.alive()
        with pytest.raises(ChaosError, match=f"process {user.pid} is gone"):
            driver.inject(Fault("pause", "shop", 0))
    finally:
        user.stop()
