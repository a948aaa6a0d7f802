"""The one error tree of oversold. Exit codes are decided only in the CLI.

    OversoldError
    ├── BadInput                 bad scenario, flag or saved run (exit 4)
    │   └── ScenarioError        every problem of a scenario, each with its field path
    │   └── FaultSpecError       a fault that cannot run (chaos.errors)
    ├── StandUpError             the harness could not stand the system up (exit 5)
    │   ├── RedisUnavailable     no Redis could be started or reached
    │   └── BackendUnavailable   a backend node did not come up
    └── HarnessError             the run itself broke (a child died, a read failed)
        ├── TransportError       no contract answer: refused, reset, timed out (oversold.contract)
        └── ChaosError           a fault could not be injected or healed (chaos.errors)
            ├── TargetRefused    a driver will not touch a target it does not own
            └── ProxyControlError the fault proxy refused a control call (chaos.proxy)

Errors of the reference backend are not in this tree: it is the system under
test and answers them over HTTP with stable codes.

Usage::

    try:
        scenario = load_scenario(path)
    except ScenarioError as e:
        for problem in e.problems:
            print(problem)
"""

from __future__ import annotations


class OversoldError(Exception):
    """Root of every error oversold raises on purpose."""


class BadInput(OversoldError):
    """Input from the user (scenario, flags, run directory) is wrong."""


class ScenarioError(BadInput):
    """A scenario has one or more problems; ``problems`` lists them as ``path: message``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n{lines}")


class StandUpError(OversoldError):
    """The system under test could not be stood up."""


class RedisUnavailable(StandUpError):
    """No Redis server could be started or reached."""


class BackendUnavailable(StandUpError):
    """A backend node did not come up or did not answer its health check."""


class HarnessError(OversoldError):
    """The harness failed while running (not the system under test)."""
