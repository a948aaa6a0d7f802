"""The nemesis: runs a fault schedule over one or more drivers and heals everything at the end.

It keeps every active injection and a timeline of what happened when, routes
each fault to the driver that has the fault's role, and heals every active
injection on ``heal_all()`` -- which the ``with`` block calls on the way out,
after a normal end, an error or a Ctrl-C (``KeyboardInterrupt``).

Usage::

    procs = ProcessDriver(state=state_file)
    procs.register_redis("redis-primary", redis_server)
    with Nemesis(procs) as nemesis:
        schedule = plan(scenario_faults, nemesis.roles(), seed=scenario.seed)
        stop = threading.Event()
        worker = threading.Thread(target=nemesis.run, args=(schedule,), kwargs={"stop": stop})
        worker.start()
        ...                            # the load runs
        stop.set(); worker.join()
    # every fault is healed here; nemesis.timeline goes into the run directory
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from oversold.errors import ChaosError, FaultSpecError
from oversold.model.fault import Fault

from .driver import Driver, Hit, Injection


@dataclass(frozen=True)
class TimelineEvent:
    """One line of the fault timeline: ``inject``, ``heal``, ``inject-error`` or ``heal-error``."""

    time: float  # wall clock, epoch seconds
    event: str
    driver: str
    fault: Fault
    injection_id: str | None = None
    hits: tuple[Hit, ...] = ()
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "event": self.event, "driver": self.driver,
                "injection_id": self.injection_id, "fault": self.fault.to_dict(),
                "hits": [h.to_dict() for h in self.hits], "detail": self.detail}


class Nemesis:
    """Every active injection across drivers; ``heal_all()`` at the end, on error, on Ctrl-C.

    Usage::

        with Nemesis(process_driver, docker_driver) as nemesis:
            inj = nemesis.inject(Fault("pause", "backend", 0))
            nemesis.heal(inj)
    """

    def __init__(self, *drivers: Driver, clock: Callable[[], float] = time.time) -> None:
        names = [d.name for d in drivers]
        if len(set(names)) != len(names):
            raise ValueError(f"two drivers share a name: {names}")
        self._drivers = list(drivers)
        self._clock = clock
        # one lock for drivers and state: a heal never races an inject on the same node
        self._lock = threading.RLock()
        self._active: dict[str, Injection] = {}
        self._timeline: list[TimelineEvent] = []
        self._begun: dict[int, Injection | None] = {}  # schedule position -> its injection

    # -- routing -------------------------------------------------------------

    def roles(self) -> dict[str, int]:
        """Target counts of every role of every driver (for ``chaos.plan``)."""
        out: dict[str, int] = {}
        for d in self._drivers:
            for role, n in d.roles().items():
                if role in out:
                    raise FaultSpecError(f"role {role!r} is registered with two drivers")
                out[role] = n
        return out

    def driver_for(self, role: str) -> Driver:
        owners = [d for d in self._drivers if d.roles().get(role, 0) > 0]
        if len(owners) != 1:
            what = "no driver has" if not owners else "two drivers have"
            raise FaultSpecError(f"{what} targets for role {role!r} (roles: {', '.join(sorted(self.roles())) or 'none'})")
        return owners[0]

    # -- faults --------------------------------------------------------------

    @property
    def active(self) -> tuple[Injection, ...]:
        with self._lock:
            return tuple(self._active.values())

    @property
    def timeline(self) -> tuple[TimelineEvent, ...]:
        with self._lock:
            return tuple(self._timeline)

    def inject(self, fault: Fault) -> Injection:
        with self._lock:
            driver = self.driver_for(fault.role)
            try:
                inj = driver.inject(fault)
            except ChaosError as e:
                self._timeline.append(TimelineEvent(self._clock(), "inject-error", driver.name, fault, detail=str(e)))
                raise
            self._active[inj.id] = inj
            self._timeline.append(TimelineEvent(inj.started_at, "inject", inj.driver, fault, inj.id, inj.hits))
            return inj

    def heal(self, injection: Injection) -> None:
        """Heal one injection; a failure is on the timeline and it stays active for ``heal_all``."""
        with self._lock:
            if injection.id not in self._active:
                return  # already healed: idempotent
            driver = next(d for d in self._drivers if d.name == injection.driver)
            try:
                driver.heal(injection)
            except Exception as e:
                self._timeline.append(TimelineEvent(self._clock(), "heal-error", driver.name, injection.fault,
                                                    injection.id, injection.hits, f"{type(e).__name__}: {e}"))
                raise
            del self._active[injection.id]
            self._timeline.append(TimelineEvent(self._clock(), "heal", driver.name, injection.fault,
                                                injection.id, injection.hits))

    def heal_all(self) -> None:
        """Heal every active injection, newest first; try them all, then raise one error naming the failures."""
        failures: list[str] = []
        with self._lock:
            for inj in reversed(list(self._active.values())):  # newest first: undo in reverse order
                try:
                    self.heal(inj)
                except Exception as e:
                    failures.append(f"{inj.id} ({inj.fault.action} {inj.fault.role}): {e}")
        if failures:
            raise ChaosError("could not heal: " + "; ".join(failures))

    # -- the schedule ----------------------------------------------------------

    def step(self, schedule: Sequence[Fault], elapsed_s: float) -> bool:
        """Inject the faults due at ``elapsed_s`` and heal those whose duration is over.

        Call it with the same (planned) schedule each time. Returns True once
        every fault was injected and every timed one healed.
        """
        with self._lock:
            for pos, fault in enumerate(schedule):
                inj = self._begun.get(pos)
                if pos not in self._begun and fault.start_s <= elapsed_s:
                    self._begun[pos] = None  # a failed inject is not retried every tick
                    self._begun[pos] = self.inject(fault)
                elif inj is not None and inj.id in self._active and fault.heal_at_s is not None \
                        and fault.heal_at_s <= elapsed_s:
                    self.heal(inj)
            return len(self._begun) == len(schedule) and not any(
                inj is not None and inj.id in self._active and inj.fault.duration_s is not None
                for inj in self._begun.values())

    def run(self, schedule: Sequence[Fault], *, stop: threading.Event,
            clock: Callable[[], float] = time.monotonic, tick_s: float = 0.05) -> None:
        """Run ``schedule`` from now until it is done or ``stop`` is set; healing of the rest is ``heal_all``'s."""
        t0 = clock()
        while not stop.is_set():
            if self.step(schedule, clock() - t0):
                return
            stop.wait(tick_s)

    def __enter__(self) -> "Nemesis":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self.heal_all()
        except ChaosError:
            if exc_type is None:
                raise
            # an error is already on its way out; the heal failures are on the timeline
