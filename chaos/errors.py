"""Errors of the chaos package, rooted in oversold's one error tree.

    OversoldError                     (oversold.errors)
    ├── BadInput
    │   └── FaultSpecError            a fault that cannot be run: unknown action or role,
    │                                 target index out of range, unresolved target choice
    └── HarnessError
        └── ChaosError                a fault could not be injected or healed
            └── TargetRefused         the driver will not touch this target: not registered
                                      with it, or a container without the run's label

Usage::

    try:
        injection = nemesis.inject(fault)
    except TargetRefused as e:
        print("refused:", e)
"""

from __future__ import annotations

from oversold.errors import BadInput, HarnessError


class FaultSpecError(BadInput):
    """A fault is wrong as written (exit 4 when it comes from a scenario)."""


class ChaosError(HarnessError):
    """Injecting or healing a fault failed."""


class TargetRefused(ChaosError):
    """A driver refused a target it does not own; nothing was done to it."""
