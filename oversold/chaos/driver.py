"""The one seam every fault driver implements: ``inject(fault)`` and ``heal(injection)``.

A driver owns a table of targets, by role, that were handed to it (processes
the harness started, containers labelled for this run); it never looks for
targets by name on its own. ``inject`` does the fault now and returns an
``Injection`` that says what was done to which concrete target (pid, container
id) and when; ``heal`` undoes it and is idempotent: a second heal, or a heal of
a target that has since been replaced, does nothing.

Usage::

    class NullDriver:
        name = "null"
        def roles(self): return {"backend": 1}
        def inject(self, fault): ...
        def heal(self, injection): ...

    assert isinstance(NullDriver(), Driver)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, runtime_checkable

from oversold.model.fault import Fault


@dataclass(frozen=True)
class Hit:
    """One concrete target a fault struck: ``kind`` is ``pid`` or ``container``."""

    role: str
    index: int
    kind: str
    ident: str  # the pid (as text) or the full container id
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "index": self.index, "kind": self.kind, "ident": self.ident, "name": self.name}


@dataclass(frozen=True)
class Injection:
    """What a driver did: enough to heal it and to draw it on the run's timeline.

    Usage::

        inj = driver.inject(Fault("pause", "backend", 0, duration_s=2))
        inj.hits[0].ident      # "12345", the pid that was stopped
        driver.heal(inj)       # SIGCONT; calling it again does nothing
    """

    id: str
    driver: str
    fault: Fault
    hits: tuple[Hit, ...]
    started_at: float  # wall clock (epoch seconds), the same clock as history records

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "driver": self.driver, "fault": self.fault.to_dict(),
                "hits": [h.to_dict() for h in self.hits], "started_at": self.started_at}


@runtime_checkable
class Driver(Protocol):
    """Inject a fault into registered targets; heal it. Both may block briefly (a restart waits for its port)."""

    name: str

    def roles(self) -> Mapping[str, int]:
        """How many targets each role has, for ``chaos.plan``."""
        ...

    def inject(self, fault: Fault) -> Injection:
        """Do ``fault`` now; raises ``FaultSpecError`` (bad action/role/index) or ``ChaosError``."""
        ...

    def heal(self, injection: Injection) -> None:
        """Undo ``injection``; idempotent."""
        ...
