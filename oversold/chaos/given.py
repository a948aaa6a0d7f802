"""The given-process driver: ``pause`` and ``kill`` faults on the user's own processes in a ``--host`` run.

The harness did not start these processes: the scenario names them
(``chaos.processes``: a role and a pid file the user's start script writes), and
the driver only ever signals the pid read from that file at stand-up, and only
while that pid is still the same process (its start time, read at stand-up).
``pause`` is SIGSTOP, healed by SIGCONT: the classic way to make a lock holder
outlive its lock's TTL. ``kill`` is SIGKILL and is never healed: a process the
harness did not start it cannot start again, so restart and stop are refused
(bad input at parse time; a process the harness starts from a command is the
process driver's, with every node fault).

Every pause is healed at the end of the run (the nemesis heals all, on error
and Ctrl-C too). A harness killed with SIGKILL mid-pause cannot: the process
stays stopped until ``kill -CONT <pid>``.

Usage::

    driver = GivenProcessDriver()
    driver.register("shop", 12345)
    inj = driver.inject(Fault("pause", "shop", 0, duration_s=1.5))
    driver.heal(inj)                                  # SIGCONT; idempotent
    driver.inject(Fault("kill", "shop", 0))           # SIGKILL, for the rest of the run
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from typing import Callable

from oversold.errors import ChaosError, FaultSpecError
from oversold.model.fault import Fault, check_fault
from oversold.model.fault_spec import GIVEN_ACTIONS

from .driver import Hit, Injection
from .sweep import proc_stat


class GivenProcessDriver:
    """SIGSTOP / SIGCONT (and an unhealed SIGKILL) on processes the user named by pid, by role."""

    name = "given"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._targets: dict[str, list[int]] = {}
        self._started: dict[int, int] = {}  # pid -> its start time (clock ticks since boot) at registration
        self._healed: set[str] = set()
        self._seq = itertools.count(1)
        self._lock = threading.RLock()
        self._clock = clock

    def register(self, role: str, pid: int) -> int:
        """Register ``pid`` under ``role``; ``ChaosError`` when no such process can be signalled."""
        try:
            os.kill(pid, 0)
        except OSError as e:
            raise ChaosError(f"{role}: no process {pid} to fault ({e.strerror})") from None
        stat = proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            raise ChaosError(f"{role}: process {pid} has died")
        with self._lock:
            self._started[pid] = stat[1]
            targets = self._targets.setdefault(role, [])
            targets.append(pid)
            return len(targets) - 1

    def roles(self) -> dict[str, int]:
        with self._lock:
            return {role: len(pids) for role, pids in self._targets.items()}

    def inject(self, fault: Fault) -> Injection:
        check_fault(self.name, fault, GIVEN_ACTIONS)
        with self._lock:
            pids = self._targets.get(fault.role)
            if not pids:
                raise FaultSpecError(f"given-process driver: no targets for role {fault.role!r}")
            started_at = self._clock()
            hits = []
            sig = signal.SIGKILL if fault.action == "kill" else signal.SIGSTOP
            for i in fault.indices(len(pids)):
                self._signal(pids[i], sig)
                hits.append(Hit(fault.role, i, "pid", str(pids[i])))
            return Injection(f"{self.name}-{next(self._seq)}", self.name, fault, tuple(hits), started_at)

    def heal(self, injection: Injection) -> None:
        with self._lock:
            if injection.id in self._healed:
                return
            if injection.fault.action == "pause":  # a kill stays: there is nothing to start again
                for hit in injection.hits:
                    self._signal(int(hit.ident), signal.SIGCONT)
            self._healed.add(injection.id)

    def _signal(self, pid: int, sig: int) -> None:
        stat = proc_stat(pid)
        # the same process as at registration, alive: a pid handed to another process since is not ours to signal
        if stat is None or stat[0] in ("Z", "X") or stat[1] != self._started.get(pid):
            raise ChaosError(f"process {pid} is gone (it died, or was stopped by someone else)")
        os.kill(pid, sig)
