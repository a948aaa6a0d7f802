"""The process driver (the default): node faults on child processes the harness started.

Targets are ``oversold.infra.procs.Child`` processes registered by role, each with a
way to start it again with the same argv and port. Signals go to the child's
own process group (it leads one), never to anything found by name.

| action    | inject                                  | heal                          |
| --------- | --------------------------------------- | ----------------------------- |
| `kill`    | SIGKILL, reaped                         | start again, wait for port    |
| `pause`   | SIGSTOP                                 | SIGCONT                       |
| `restart` | SIGTERM (SIGKILL after a timeout), start again | nothing                |
| `stop`    | SIGTERM (SIGKILL after a timeout)       | start again, wait for port    |

A heal acts only on the process the injection hit: if that node has been
restarted since (by another fault's heal), there is nothing left to heal.

Usage::

    driver = ProcessDriver(state=StateFile(run_dir / "state.jsonl"))
    driver.register_redis("redis-primary", redis_server)        # keeps redis_server.child current
    driver.register("backend", node_child, port=node_port)       # restarted with the same argv
    inj = driver.inject(Fault("kill", "backend", 0))
    driver.heal(inj)                                             # back on the same port
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable

from oversold.errors import ChaosError, FaultSpecError
from oversold.infra.procs import Child, wait_for_port
from oversold.infra.redis_server import RedisServer
from oversold.model.fault import NODE_ACTIONS, Fault, check_fault, pick_targets

from .driver import Hit, Injection
from .sweep import StateFile


@dataclass
class ProcessTarget:
    """One registered node: its current ``Child`` and how to start it again."""

    role: str
    index: int
    child: Child
    restart: Callable[[], Child]
    port: int | None = None
    on_restart: Callable[[Child], None] | None = None
    ready: Callable[[Child], bool] | None = None  # waits until a new child is ready; False if it never was


def same_argv(child: Child, *, env: dict[str, str] | None = None, cwd: str | None = None) -> Callable[[], Child]:
    """A restart callable: the same argv, name and log directory (the log is appended to)."""
    argv, name = list(child.argv), child.name
    log_dir = child.log_path.parent if child.log_path is not None else None
    return lambda: Child.start(argv, name=name, log_dir=log_dir, env=env, cwd=cwd)


class ProcessDriver:
    """Kill, pause, restart or stop registered child processes.

    Usage::

        driver = ProcessDriver()
        driver.register_redis("redis-primary", server)
        with Nemesis(driver) as nemesis:
            nemesis.inject(Fault("pause", "redis-primary", 0))
        driver.stop_all()     # teardown: every current child, restarted ones included
    """

    name = "process"

    def __init__(self, *, state: StateFile | None = None, stop_timeout_s: float = 5.0,
                 ready_timeout_s: float = 10.0, settle_s: float = 0.1,
                 clock: Callable[[], float] = time.time, name: str = "process") -> None:
        self.name = name  # a second driver beside the main one needs its own name (the nemesis heals by it)
        self._state = state
        self._settle_s = settle_s
        self._stop_timeout_s = stop_timeout_s
        self._ready_timeout_s = ready_timeout_s
        self._clock = clock
        self._targets: dict[str, list[ProcessTarget]] = {}
        self._healed: set[str] = set()
        self._seq = itertools.count(1)
        self._lock = threading.RLock()

    # -- registration --------------------------------------------------------

    def register(self, role: str, child: Child, *, restart: Callable[[], Child] | None = None,
                 port: int | None = None, on_restart: Callable[[Child], None] | None = None,
                 ready: Callable[[Child], bool] | None = None) -> int:
        """Register ``child`` under ``role``; returns its index in the role.

        ``restart`` starts it again (default: ``same_argv(child)``, which does not
        keep a custom env or cwd -- pass your own for those). With ``port``, a
        restart waits until the port accepts connections; ``ready`` (the new child
        -> ready or not, after waiting) replaces that wait. ``on_restart`` is told
        of every new ``Child`` so the owner's handle stays current.
        """
        if not role:
            raise FaultSpecError("a target needs a role")
        with self._lock:
            targets = self._targets.setdefault(role, [])
            targets.append(ProcessTarget(role, len(targets), child, restart or same_argv(child), port, on_restart,
                                         ready))
            return len(targets) - 1

    def register_redis(self, role: str, server: RedisServer) -> int:
        """Register a ``RedisServer``; its ``child`` is replaced on every restart so ``server.stop()`` still works."""
        return self.register(role, server.child, port=server.port,
                             on_restart=lambda c: setattr(server, "child", c))

    def roles(self) -> dict[str, int]:
        with self._lock:
            return {role: len(ts) for role, ts in self._targets.items()}

    def target(self, role: str, index: int = 0) -> ProcessTarget:
        with self._lock:
            try:
                return self._targets[role][index]
            except (KeyError, IndexError):
                raise FaultSpecError(f"no process target {role}[{index}] (roles: {self.roles()})") from None

    def child(self, role: str, index: int = 0) -> Child:
        """The current process of a target (a new one after each restart)."""
        return self.target(role, index).child

    # -- faults --------------------------------------------------------------

    def inject(self, fault: Fault) -> Injection:
        check_fault("process", fault, NODE_ACTIONS)
        with self._lock:
            chosen = pick_targets("process", fault, self._targets)
            started_at = self._clock()
            hits = []
            for t in chosen:
                hits.append(Hit(t.role, t.index, "pid", str(t.child.pid), t.child.name))
                self._do(fault.action, t)
            return Injection(f"{self.name}-{next(self._seq)}", self.name, fault, tuple(hits), started_at)

    def _do(self, action: str, t: ProcessTarget) -> None:
        if action == "kill":
            t.child.signal(signal.SIGKILL)
            self._reap(t.child)
        elif action == "pause":
            t.child.signal(signal.SIGSTOP)
        elif action == "stop":
            t.child.stop(self._stop_timeout_s)
        elif action == "restart":
            t.child.stop(self._stop_timeout_s)
            self._start_again(t)

    def heal(self, injection: Injection) -> None:
        with self._lock:
            if injection.id in self._healed:
                return
            action = injection.fault.action
            for hit in injection.hits:
                t = self.target(hit.role, hit.index)
                if str(t.child.pid) != hit.ident:
                    continue  # the node was replaced since: the process this fault hit is gone
                if action == "pause":
                    t.child.signal(signal.SIGCONT)
                elif action in ("kill", "stop") and not t.child.alive():
                    self._reap(t.child)
                    self._start_again(t)
            self._healed.add(injection.id)

    # -- processes -----------------------------------------------------------

    def _reap(self, child: Child) -> None:
        try:
            child.popen.wait(timeout=self._stop_timeout_s)
        except subprocess.TimeoutExpired:
            raise ChaosError(f"{child.name} (pid {child.pid}) did not die after SIGKILL") from None

    def _start_again(self, t: ProcessTarget) -> None:
        new = t.restart()
        # the new child is ours from this moment: registered and recorded before anything can fail
        t.child = new
        if self._state is not None:
            self._state.record_child(new)
        if t.on_restart is not None:
            t.on_restart(new)
        if t.ready is not None:
            ready = t.ready(new)
        elif t.port is not None:
            ready = wait_for_port(t.port, timeout=self._ready_timeout_s, child=new)
        else:
            # no port to wait for: at least see that it did not die at once (a bad config, a missing file)
            time.sleep(self._settle_s)
            ready = new.alive()
        if not ready:
            raise ChaosError(f"{t.role}[{t.index}] did not come back (pid {new.pid}"
                             f"{f', port {t.port}' if t.port else ''}): {new.log_tail()}")

    def stop_all(self) -> None:
        """Stop the current process of every target (teardown); paused ones are resumed first."""
        with self._lock:
            for targets in self._targets.values():
                for t in targets:
                    t.child.stop(self._stop_timeout_s)
