"""The one error tree of oversold. Exit codes are decided only in the CLI.

    OversoldError
    ├── BadInput                 bad scenario, flag or saved run (exit 4)
    │   ├── ScenarioError        every problem of a scenario, each with its field path
    │   └── FaultSpecError       a fault that cannot run: unknown action or role, target out of range
    ├── StandUpError             the harness could not stand the system up (exit 5)
    │   ├── RedisUnavailable     no Redis could be started or reached
    │   └── BackendUnavailable   a backend node did not come up
    └── HarnessError             the run itself broke (a child died, a read failed)
        ├── TransportError       no contract answer: refused, reset, timed out
        └── ChaosError           a fault could not be injected or healed
            ├── TargetRefused    a driver will not touch a target it does not own
            └── ProxyControlError the fault proxy's control API refused a call

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


class FaultSpecError(BadInput):
    """A fault is wrong as written (exit 4 when it comes from a scenario)."""


class TransportError(HarnessError):
    """No contract answer: refused, reset, timed out, or not a JSON object.

    ``maybe_applied`` is False only when the request surely never reached the
    backend (the connection was refused), True when its outcome is unknown.
    """

    def __init__(self, message: str, *, maybe_applied: bool) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


class ChaosError(HarnessError):
    """Injecting or healing a fault failed."""


class TargetRefused(ChaosError):
    """A driver refused a target it does not own; nothing was done to it."""


class ProxyControlError(ChaosError):
    """The fault proxy's control API refused a request (``status`` is its HTTP status, 0 if unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"fault proxy: {status}: {message}")
        self.status = status
