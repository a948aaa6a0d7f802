"""oversold's nemesis: faults injected into the system under test, every one healed at the end.

Node faults (this package's core): a pure ``Fault`` model and ``plan`` (the seed
picks targets), one ``Driver`` seam (``inject`` / ``heal``), the ``process``
driver (children the harness started) and the ``docker`` driver
(``chaos.docker_driver``, containers carrying the run's label), a ``Nemesis``
that runs a schedule and heals everything on the way out, and the state file
plus start-up ``sweep`` for what a killed run left behind.

Usage::

    from oversold.chaos import Fault, Nemesis, ProcessDriver, plan

    driver = ProcessDriver()
    driver.register_redis("redis-primary", server)
    with Nemesis(driver) as nemesis:
        for fault in plan([Fault("pause", "redis-primary", "one", 1.0, 2.0)], nemesis.roles(), seed=1):
            ...
"""

from oversold.errors import ChaosError, FaultSpecError, TargetRefused
from oversold.model.fault import NODE_ACTIONS, TARGET_CHOICES, Fault, plan

from .driver import Driver, Hit, Injection
from .nemesis import Nemesis, TimelineEvent
from .process import ProcessDriver, ProcessTarget, same_argv
from .sweep import StateFile, SweepReport, sweep

__all__ = [
    "ChaosError", "Driver", "Fault", "FaultSpecError", "Hit", "Injection", "NODE_ACTIONS", "Nemesis",
    "ProcessDriver", "ProcessTarget", "StateFile", "SweepReport", "TARGET_CHOICES", "TargetRefused",
    "TimelineEvent", "plan", "same_argv", "sweep",
]
