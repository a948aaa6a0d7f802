"""The user's own system in a ``--host`` run, as fault targets: what ``chaos.upstreams``,
``chaos.processes`` and ``chaos.containers`` declare.

| declared                                   | what the harness does                                     | role / driver     |
| ------------------------------------------ | --------------------------------------------------------- | ----------------- |
| ``upstreams: [{role, listen, upstream}]``  | the fault proxy listens on ``listen``, forwards upstream   | role / proxy      |
| ``processes: [{role, command, ...}]``      | starts it before the sale, waits until ready, stops it     | role / process    |
| ``processes: [{role, pidfile}]``           | reads the pid (the user started it)                        | role / given      |
| ``containers: [{role, container}]``        | resolves the name to its id (the user started it)          | role / container  |

A process started from a command is a ``Child`` like the harness's own nodes:
recorded in the run's state file, logged to ``logs/<role>.log``, registered with
the run's process driver (kill, pause, restart, stop; a restart runs the same
command again and waits until it is ready), stopped at the end of the run.

Usage::

    procs = ProcessDriver(state=state)
    start_user_processes(scenario, procs, stack=stack, state=state, logs=logs, progress=print)
    drivers = [procs, *user_drivers(scenario, stack=stack, state=state, logs=logs, progress=print)]
"""

from __future__ import annotations

import os
import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable

from oversold.chaos.driver import Driver
from oversold.chaos.process import ProcessDriver, same_argv
from oversold.errors import ChaosError, StandUpError, TargetRefused
from oversold.infra.procs import Child, wait_for_port, wait_for_url

Say = Callable[[str], None]

#: how long a process started from a command may take to be ready, at the start and after each restart
READY_TIMEOUT_S = 30.0
#: without ready_url or ready_port: alive this long after its start counts as ready
SETTLE_S = 0.5


def user_drivers(scenario: Any, *, stack: ExitStack, state: Any, logs: Path, progress: Say) -> list[Driver]:
    """The drivers of the user's upstreams, processes given by pid file and containers (none if not declared)."""
    chaos = scenario.chaos
    drivers: list[Driver] = []
    if chaos.upstreams:
        drivers.append(_front_upstreams(scenario, stack, state, logs, progress))
    if any(not p.started for p in chaos.processes):
        drivers.append(_given_processes(scenario, progress))
    if chaos.containers:
        drivers.append(_given_containers(scenario, stack, progress))
    return drivers


def start_user_processes(scenario: Any, procs: ProcessDriver, *, stack: ExitStack, state: Any, logs: Path,
                         progress: Say) -> None:
    """Start every ``chaos.processes`` entry that has a command, wait until each is ready, register it
    with ``procs`` by its role; each one's stop (the current process, after restarts) goes on ``stack``."""
    started = [(i, p) for i, p in enumerate(scenario.chaos.processes) if p.started]
    per_role: dict[str, int] = {}
    for _, p in started:
        per_role[p.role] = per_role.get(p.role, 0) + 1
    seen: dict[str, int] = {}
    for i, p in started:
        where = f"chaos.processes[{i}]"
        seen[p.role] = seen.get(p.role, 0) + 1
        name = p.role if per_role[p.role] == 1 else f"{p.role}-{seen[p.role]}"
        env = None if p.env is None else {**os.environ, **p.env}
        try:
            child = Child.start(list(p.command), name=name, log_dir=logs, env=env, cwd=p.cwd)
        except OSError as e:  # no such program, no such cwd, not executable
            raise StandUpError(f"{where}.command: cannot start {' '.join(p.command)}"
                               f"{f' in {p.cwd}' if p.cwd else ''}: {e}") from e
        state.record_child(child)
        current = [child]  # the process now: a restart replaces it, the stop below stops whichever it is
        stack.callback(lambda c=current: c[0].stop())
        ready = _readiness(p)
        if not ready(child):
            raise StandUpError(f"{where}: {' '.join(p.command)} (pid {child.pid}) {_not_ready(p, child)}; "
                               f"its log {child.log_path}:\n{child.log_tail(20)}")
        procs.register(p.role, child, restart=same_argv(child, env=env, cwd=p.cwd), ready=ready,
                       on_restart=lambda c, cur=current: cur.__setitem__(0, c))
        progress(f"chaos: started {p.role} (pid {child.pid}, log {child.log_path}): "
                 "kill, pause, restart and stop faults reach it")


def _readiness(p: Any) -> Callable[[Child], bool]:
    """How to tell a freshly started process of the user's is ready (blocks until it is or never will be)."""
    if p.ready_url is not None:
        return lambda c: wait_for_url(p.ready_url, timeout=READY_TIMEOUT_S, child=c)
    if p.ready_port is not None:
        return lambda c: wait_for_port(p.ready_port, timeout=READY_TIMEOUT_S, child=c)

    def alive_a_moment_later(c: Child) -> bool:
        try:
            c.popen.wait(timeout=SETTLE_S)
        except subprocess.TimeoutExpired:  # still running, which is what we wait for
            return True
        return False

    return alive_a_moment_later


def _not_ready(p: Any, child: Child) -> str:
    if not child.alive():
        return f"exited with status {child.popen.returncode}"
    what = f"{p.ready_url} did not answer 2xx" if p.ready_url else f"port {p.ready_port} did not accept connections"
    return f"was not ready: {what} within {READY_TIMEOUT_S:g}s"


def _front_upstreams(scenario: Any, stack: ExitStack, state: Any, logs: Path, progress: Say) -> Driver:
    """The fault proxy in front of the user's upstreams (``chaos.upstreams``): one link per upstream,
    listening where the user's backend is pointed, registered by the upstream's role."""
    from oversold.chaos.proxy import FaultProxy, ProxyControlError
    from oversold.chaos.proxy_driver import ProxyDriver

    fp = FaultProxy.start(log_dir=logs, seed=scenario.seed)
    state.record_child(fp.child)
    stack.callback(fp.stop)
    driver = ProxyDriver(fp.client)
    for i, u in enumerate(scenario.chaos.upstreams):
        name = f"{u.role}-{i + 1}"
        try:
            fp.client.create(name, upstream=u.upstream, listen=u.listen)
        except ProxyControlError as e:  # the proxy refused: the port is taken, say
            raise StandUpError(f"chaos.upstreams[{i}]: the fault proxy cannot listen on {u.listen} "
                               f"for {u.upstream}: {e}") from e
        driver.register(u.role, name)
        progress(f"proxy: {u.role} {u.listen} -> {u.upstream} (point your backend at {u.listen})")
    return driver


def _given_processes(scenario: Any, progress: Say) -> Driver:
    """The user's processes given by pid file (``chaos.processes``), by the pids their files hold now."""
    from oversold.chaos.given import GivenProcessDriver

    driver = GivenProcessDriver()
    for i, p in enumerate(scenario.chaos.processes):
        if p.started:
            continue
        where = f"chaos.processes[{i}]"
        try:
            pid = int(Path(p.pidfile).read_text(encoding="utf-8").strip())
        except (OSError, ValueError) as e:
            raise StandUpError(f"{where}.pidfile: cannot read a pid from {p.pidfile}: {e}") from e
        try:
            driver.register(p.role, pid)
        except ChaosError as e:
            raise StandUpError(f"{where}: {e}") from e
        progress(f"chaos: {p.role} is pid {pid} (from {p.pidfile}): pause faults stop and resume it, "
                 "a kill kills it for the rest of the run")
    return driver


def docker_client(what: str, otherwise: str = "") -> Any:
    """A client of a Docker engine that answers; ``StandUpError`` naming ``what`` needed it (and what to
    do ``otherwise``) when none does."""
    try:
        import docker
    except ImportError as e:  # pragma: no cover - docker is a dependency
        raise StandUpError(f"{what} needs the Docker SDK for Python ({e})") from None
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as e:  # noqa: BLE001 - any failure here means "no engine to talk to"
        raise StandUpError(f"{what}, but no Docker engine answers ({type(e).__name__}: {e}); "
                           f"start one with `scripts/docker-engine.sh start` (as root){otherwise}") from None
    return client


def _given_containers(scenario: Any, stack: ExitStack, progress: Say) -> Driver:
    """The user's containers (``chaos.containers``), each resolved to its id now; they must be running."""
    from oversold.chaos.docker_driver import GivenContainerDriver

    client = docker_client("chaos.containers")
    stack.callback(client.close)
    driver = GivenContainerDriver(client, ready_timeout_s=READY_TIMEOUT_S)
    for i, c in enumerate(scenario.chaos.containers):
        where = f"chaos.containers[{i}]"
        try:
            driver.register(c.role, c.container, port=c.ready_port)
        except TargetRefused as e:
            raise StandUpError(f"{where}.container: {e}") from e
        found = client.containers.get(c.container)
        if found.status != "running":
            raise StandUpError(f"{where}.container: {c.container} is {found.status}; start it before the run")
        progress(f"chaos: {c.role} is container {found.name} ({found.id[:12]}): kill, pause, restart and "
                 "stop faults reach it")
    return driver
