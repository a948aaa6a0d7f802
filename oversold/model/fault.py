"""Faults and the fault schedule: pure data and pure functions, no clock, no I/O.

A ``Fault`` says what to do (``action``) to which node (``role`` + ``target``),
when (``start_s`` after the load starts) and for how long (``duration_s``, then
it is healed; ``None`` heals it only at the end of the run).

``target`` is an index into the role's registered targets, a tuple of indices,
or a choice: ``"all"``, ``"one"`` (a single target picked by the seed) or
``"random"`` (a non-empty subset picked by the seed). Choices are made here, in
``plan``, from the scenario's seed, so the schedule written with a run says
exactly which node was hit and a replay hits the same one; drivers only ever
see concrete indices.

Usage::

    faults = [Fault("kill", "backend", "one", start_s=5, duration_s=3),
              Fault("pause", "redis-primary", 0, start_s=12, duration_s=2)]
    schedule = plan(faults, {"backend": 3, "redis-primary": 1}, seed=7)
    schedule[0].target     # (2,) -- the same for seed 7, every time
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping, Sequence, TypeVar, Union

from oversold.errors import FaultSpecError

NODE_ACTIONS = ("kill", "pause", "restart", "stop")
TARGET_CHOICES = ("all", "one", "random")

Target = Union[int, tuple[int, ...], str]
T = TypeVar("T")


@dataclass(frozen=True)
class Fault:
    """One fault of a schedule.

    ``action`` is a free string checked by the driver that runs it (node drivers
    know ``NODE_ACTIONS``; other drivers, such as the fault proxy, have theirs).
    ``params`` carries an action's settings for drivers that take some (a
    toxic's latency, say); node actions take none and refuse any.

    Usage::

        Fault("pause", "redis-primary", 0, start_s=10.0, duration_s=2.5)
    """

    action: str
    role: str
    target: Target = "one"
    start_s: float = 0.0
    duration_s: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise FaultSpecError("; ".join(problems))
        if isinstance(self.target, list):  # from YAML/JSON: keep the dataclass hashable
            object.__setattr__(self, "target", tuple(self.target))
        # read-only, so a planned schedule cannot be changed behind the run's back
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def resolved(self) -> bool:
        """True once the target is concrete indices (or ``"all"``), as drivers need."""
        return not (isinstance(self.target, str) and self.target != "all")

    @property
    def heal_at_s(self) -> float | None:
        """Seconds after the start of the load when this fault is healed, or None (at the end)."""
        return None if self.duration_s is None else self.start_s + self.duration_s

    def indices(self, count: int) -> tuple[int, ...]:
        """The concrete target indices among ``count`` registered targets."""
        if self.target == "all":
            return tuple(range(count))
        if isinstance(self.target, str):
            raise FaultSpecError(
                f"fault {self.action} {self.role}: target {self.target!r} must be resolved by chaos.plan() "
                "from the run's seed before a driver runs it"
            )
        idx = (self.target,) if isinstance(self.target, int) else tuple(self.target)
        bad = [i for i in idx if i >= count]
        if bad:
            raise FaultSpecError(
                f"fault {self.action} {self.role}: target index {bad[0]} out of range "
                f"({count} target(s) registered for role {self.role!r})"
            )
        return idx

    def to_dict(self) -> dict[str, Any]:
        target = list(self.target) if isinstance(self.target, tuple) else self.target
        out: dict[str, Any] = {"action": self.action, "role": self.role, "target": target,
                               "start_s": self.start_s, "duration_s": self.duration_s}
        if self.params:
            out["params"] = dict(self.params)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "fault") -> "Fault":
        """Build from a scenario mapping; every problem is reported with ``path``."""
        if not isinstance(data, Mapping):
            raise FaultSpecError(f"{path}: must be a mapping with action, role, target, start_s, duration_s")
        unknown = sorted(set(data) - {"action", "role", "target", "start_s", "duration_s", "params"})
        if unknown:
            raise FaultSpecError(f"{path}: unknown field(s) {', '.join(unknown)}")
        try:
            return cls(
                action=data.get("action", ""),
                role=data.get("role", ""),
                target=data.get("target", "one"),
                start_s=data.get("start_s", 0.0),
                duration_s=data.get("duration_s"),
                params=data.get("params") or {},
            )
        except FaultSpecError as e:
            raise FaultSpecError(f"{path}: {e}") from None


def _problems(f: Fault) -> list[str]:
    out: list[str] = []
    if not isinstance(f.action, str) or not f.action:
        out.append("action: must be a non-empty string")
    if not isinstance(f.role, str) or not f.role:
        out.append("role: must be a non-empty string")
    t = f.target
    if isinstance(t, bool) or not (
        (isinstance(t, int) and t >= 0)
        or (isinstance(t, str) and t in TARGET_CHOICES)
        or (isinstance(t, (tuple, list)) and t and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in t))
    ):
        out.append(f"target: {t!r} is not an index >= 0, a non-empty list of them, or one of {', '.join(TARGET_CHOICES)}")
    if isinstance(f.start_s, bool) or not isinstance(f.start_s, (int, float)) or f.start_s < 0:
        out.append("start_s: must be a number >= 0")
    d = f.duration_s
    if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float)) or d < 0):
        out.append("duration_s: must be a number >= 0, or absent (heal at the end)")
    if not isinstance(f.params, Mapping) or not all(isinstance(k, str) for k in f.params):
        out.append("params: must be a mapping of names to values")
    return out


def plan(faults: Sequence[Fault], counts: Mapping[str, int], seed: int) -> tuple[Fault, ...]:
    """Resolve every target choice with ``seed`` and order the faults by start time.

    ``counts`` is how many targets each role has (``Nemesis.roles()``). Pure:
    the same faults, counts and seed give the same schedule. Every problem is
    reported at once.
    """
    rng = random.Random(seed)  # a private generator: no global state touched
    out: list[Fault] = []
    problems: list[str] = []
    for i, f in enumerate(faults):  # draw in the order written, so adding a fault later keeps earlier picks
        n = counts.get(f.role, 0)
        if n <= 0:
            known = ", ".join(sorted(r for r, c in counts.items() if c > 0)) or "none"
            problems.append(f"faults[{i}].role: no targets registered for role {f.role!r} (roles: {known})")
            continue
        if f.target == "one":
            target: tuple[int, ...] = (rng.randrange(n),)
        elif f.target == "random":
            target = tuple(sorted(rng.sample(range(n), rng.randint(1, n))))
        else:
            try:
                target = f.indices(n)
            except FaultSpecError as e:
                problems.append(f"faults[{i}].target: {e}")
                continue
        out.append(replace(f, target=target))
    if problems:
        raise FaultSpecError("fault schedule: " + "; ".join(problems))
    return tuple(sorted(out, key=lambda f: f.start_s))  # sorted() is stable: ties keep written order


def check_fault(driver: str, fault: Fault, actions: Sequence[str], *, takes_params: bool = False) -> None:
    """Refuse a fault ``driver`` cannot run: an action it does not have, or params it takes none of."""
    if fault.action not in actions:
        raise FaultSpecError(f"{driver} driver: unknown action {fault.action!r} (one of {', '.join(actions)})")
    if fault.params and not takes_params:
        raise FaultSpecError(f"{driver} driver: {fault.action} takes no params (got {', '.join(fault.params)})")


def pick_targets(driver: str, fault: Fault, targets: Mapping[str, Sequence[T]]) -> list[T]:
    """The registered targets ``fault`` hits, from ``targets`` (role -> targets in index order)."""
    found = targets.get(fault.role)
    if not found:
        raise FaultSpecError(f"{driver} driver: no targets for role {fault.role!r} (roles: {', '.join(targets) or 'none'})")
    return [found[i] for i in fault.indices(len(found))]
