"""The chaos parts of a scenario: the fault list, the chaos driver, the topology checks. Pure.

A scenario's ``faults:`` are ``FaultSpec``s: a ``chaos.Fault`` (action, role,
target, start, duration, params) that may repeat at random intervals
(``every_s``). Two pure steps turn them into the schedule a run executes:

1. ``expand(specs, seed, horizon_s)``: every repeat gets a concrete start time,
   drawn from the seed;
2. ``chaos.plan(faults, roles, seed)``: every ``one``/``random`` target becomes
   concrete indices.

``schedule(scenario)`` does both with the roles ``expected_roles(scenario)``
says the run will register. The result is written back into the run
directory's ``scenario.yaml`` as plain faults (no ``every_s``, concrete
targets), so ``oversold run RUN_DIR/scenario.yaml`` replays exactly that
schedule: expanding and planning a concrete schedule again changes nothing.

Usage::

    specs, problems = parse_faults(yaml_data.get("faults"), "faults")
    faults = expand(specs, seed=42, horizon_s=10.0)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

from oversold.errors import FaultSpecError

from .fault import NODE_ACTIONS, Fault
from .toxics import Toxic, ToxicError

#: what each role accepts; a role exists in a run only if the topology has it (``expected_roles``)
ROLE_ACTIONS: dict[str, tuple[str, ...]] = {
    "backend": NODE_ACTIONS,                          # reference backend node processes
    "redis-primary": NODE_ACTIONS + ("failover",),    # the Redis the nodes write to (whoever is primary; a cluster: one per shard)
    "sentinel": NODE_ACTIONS,                         # Sentinel processes (topology: sentinel)
    "proxy": ("toxic", "down"),                       # each node's link to Redis through the fault proxy
    "replication": ("toxic", "down"),                 # the replica's link to the primary (redis.replication_proxy)
    "sync": NODE_ACTIONS + ("delay", "stall"),        # the stock sync worker
    "orders": NODE_ACTIONS,                           # the order processors of an async_orders sale
    "clock": ("clock_skew",),                         # each node's own wall clock (reference_backend.clock)
}
DRIVERS = ("process", "docker")
TOPOLOGIES = ("single", "sentinel", "cluster")
PERSISTENCE = ("none", "aof")

_FAULT_FIELDS = ("action", "role", "target", "start_s", "duration_s", "params", "every_s", "until_s")


@dataclass(frozen=True)
class FaultSpec:
    """One entry of a scenario's ``faults:`` list.

    ``every_s = (lo, hi)``: after each occurrence is healed, the next one
    starts a random ``lo..hi`` seconds later (drawn from the seed), as long as
    it starts before ``until_s`` (default: the swarm's duration).

    Usage::

        FaultSpec("kill", "backend", "one", start_s=2, duration_s=1, every_s=(2, 4))
    """

    action: str
    role: str
    target: Any = "one"  # int, list of ints, or one of chaos.TARGET_CHOICES
    start_s: float = 0.0
    duration_s: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    every_s: tuple[float, float] | None = None
    until_s: float | None = None

    def fault(self, start_s: float | None = None) -> Fault:
        return Fault(self.action, self.role, self.target, self.start_s if start_s is None else start_s,
                     self.duration_s, self.params)

    @classmethod
    def of(cls, fault: Fault) -> "FaultSpec":
        """A planned fault as a plain spec (for the scenario written into the run directory)."""
        target = list(fault.target) if isinstance(fault.target, tuple) else fault.target
        return cls(fault.action, fault.role, target, fault.start_s, fault.duration_s, dict(fault.params))


@dataclass(frozen=True)
class Upstream:
    """One of the user's upstreams (their database, their Redis) that the fault proxy fronts in a
    ``--host`` run: the proxy listens on ``listen`` (where the user's backend is pointed) and forwards
    to ``upstream`` (the real server); faults on ``role`` (``toxic``, ``down``) act on that link.

    Usage (scenario)::

        chaos:
          upstreams:
            - {role: database, listen: "127.0.0.1:6432", upstream: "127.0.0.1:5432"}
    """

    role: str
    listen: str
    upstream: str


@dataclass(frozen=True)
class GivenProcess:
    """One of the user's processes in a ``--host`` run, faulted by ``role``. Either a ``pidfile`` the
    user's start script writes (read when the run stands up: ``pause`` and an unhealed ``kill`` only,
    the harness cannot start it again) or a ``command`` the harness starts before the sale (in ``cwd``,
    with ``env`` over its own environment), waits for (``ready_url`` answers 2xx, or ``ready_port``
    accepts connections), supervises and stops at the end: every node fault (kill, pause, restart, stop).

    Usage (scenario)::

        chaos:
          processes:
            - {role: shop, pidfile: shop.pid}
            - {role: worker, command: [python, worker.py], cwd: shop, env: {DB: shop.db}, ready_port: 8081}
    """

    role: str
    pidfile: str | None = None
    command: tuple[str, ...] | None = None
    cwd: str | None = None
    env: Mapping[str, str] | None = field(default=None, hash=False)
    ready_url: str | None = None
    ready_port: int | None = None

    @property
    def started(self) -> bool:
        """Whether the harness starts this process (it has a command) and so can start it again."""
        return self.command is not None


@dataclass(frozen=True)
class GivenContainer:
    """One of the user's containers in a ``--host`` run, by name or id: faults on ``role`` pause,
    kill, restart or stop it through the Docker engine (a kill or stop is healed by starting it
    again, waiting for ``ready_port`` when given).

    Usage (scenario)::

        chaos:
          containers:
            - {role: cache, container: shop-redis, ready_port: 6379}
    """

    role: str
    container: str
    ready_port: int | None = None


#: Roles the harness gives its own parts: an upstream of yours takes another name.
HARNESS_ROLES = tuple(ROLE_ACTIONS)
#: What a fault can do to an upstream of yours: it is a link through the fault proxy.
UPSTREAM_ACTIONS = ("toxic", "down")
#: What a fault can do to a process of yours given by pid file: the harness did not start it and cannot
#: start it again, so pause (healed by SIGCONT) and a kill that is never healed.
GIVEN_ACTIONS = ("pause", "kill")
#: Why a process given by pid file takes no more, for the error a fault asking more gets.
GIVEN_WHY = ("given by pid file, the harness did not start it and cannot start it again: give chaos.processes "
             "a command: [...] instead of the pid file, and the harness starts it, restarts it and heals a kill")


@dataclass(frozen=True)
class ChaosConfig:
    """``chaos:``: which driver runs node faults on Redis, the Docker label and image, and the user's
    upstreams the fault proxy fronts (``--host`` runs)."""

    driver: str = "process"
    docker_label: str = "oversold.run"  # label key; its value is the run's id
    docker_image: str = "oversold/redis:local"  # built locally from redis-server if missing (chaos.image)
    upstreams: tuple[Upstream, ...] = ()
    processes: tuple[GivenProcess, ...] = ()
    containers: tuple[GivenContainer, ...] = ()

    def user_roles(self) -> dict[str, tuple[str, ...]]:
        """The roles of the user's parts (upstreams, processes, containers) and the actions each takes."""
        return {**{u.role: UPSTREAM_ACTIONS for u in self.upstreams},
                **{p.role: NODE_ACTIONS if p.started else GIVEN_ACTIONS for p in self.processes},
                **{c.role: NODE_ACTIONS for c in self.containers}}

    def role_notes(self) -> dict[str, str]:
        """Why a role of the user's takes only the actions it does, where that is not plain."""
        return {p.role: GIVEN_WHY for p in self.processes if not p.started}


# -- parsing --------------------------------------------------------------------------


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_faults(raw: Any, path: str = "faults", user_roles: Mapping[str, tuple[str, ...]] | None = None,
                 notes: Mapping[str, str] | None = None) -> tuple[tuple[FaultSpec, ...], list[str]]:
    """The ``faults:`` list; every problem with its field path (``faults[1].params.type: ...``).
    ``user_roles`` (``ChaosConfig.user_roles()``: the user's upstreams, processes and containers) are known
    roles too; ``notes`` (``ChaosConfig.role_notes()``) say why a role takes no more than it does."""
    roles = {**ROLE_ACTIONS, **(user_roles or {})}
    if raw is None:
        return (), []
    if not isinstance(raw, list):
        return (), [f"{path}: must be a list of faults, got {type(raw).__name__}"]
    specs: list[FaultSpec] = []
    problems: list[str] = []
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a mapping (action, role, target, start_s, duration_s, ...)")
            continue
        found = _fault_problems(item, where, roles, notes or {})
        if found:
            problems.extend(found)
            continue
        every = item.get("every_s")
        specs.append(FaultSpec(
            action=item["action"], role=item["role"],
            target=item.get("target", "one"),
            start_s=float(item.get("start_s", 0.0)),
            duration_s=None if item.get("duration_s") is None else float(item["duration_s"]),
            params=dict(item.get("params") or {}),
            every_s=None if every is None else (float(every[0]), float(every[1])),
            until_s=None if item.get("until_s") is None else float(item["until_s"]),
        ))
    return tuple(specs), problems


def _fault_problems(item: dict[str, Any], where: str, roles: dict[str, tuple[str, ...]],
                    notes: Mapping[str, str]) -> list[str]:
    problems = [f"{where}.{k}: unknown field; known: {', '.join(_FAULT_FIELDS)}" for k in item if k not in _FAULT_FIELDS]
    base = {k: item[k] for k in ("action", "role", "target", "start_s", "duration_s", "params") if k in item}
    try:
        Fault.from_dict(base, where)  # the fault model's own checks (target shape, numbers)
    except FaultSpecError as e:
        problems.append(str(e))
        return problems
    role, action = item.get("role"), item.get("action")
    if role not in roles:
        problems.append(f"{where}.role: unknown role {role!r}; known: {', '.join(roles)} (a part of your own "
                        f"system takes the role you give it in chaos.upstreams, chaos.processes or chaos.containers)")
    elif action not in roles[role]:
        why = f" ({role} is {notes[role]})" if role in notes else ""
        problems.append(f"{where}.action: {role} takes {', '.join(roles[role])}, got {action!r}{why}")
    elif action == "kill" and role in notes and (item.get("duration_s") is not None or item.get("every_s")):
        problems.append(f"{where}.duration_s: a kill of {role} is never healed ({role} is {notes[role]}); "
                        f"leave out duration_s and every_s (it stays dead to the end of the run)")
    else:
        problems.extend(_params_problems(action, dict(item.get("params") or {}), f"{where}.params"))
    every = item.get("every_s")
    if every is not None:
        if not (isinstance(every, list) and len(every) == 2 and all(_num(x) and x > 0 for x in every)
                and every[0] <= every[1]):
            problems.append(f"{where}.every_s: must be [low, high] seconds with 0 < low <= high, got {every!r}")
        if item.get("duration_s") is None:
            problems.append(f"{where}.every_s: a repeated fault needs duration_s (each one is healed before the next)")
    until = item.get("until_s")
    if until is not None:
        if not _num(until) or until < 0:
            problems.append(f"{where}.until_s: must be a number >= 0, got {until!r}")
        if every is None:
            problems.append(f"{where}.until_s: only with every_s")
    return problems


def _params_problems(action: str, params: dict[str, Any], where: str) -> list[str]:
    if action == "toxic":
        if "type" not in params:
            return [f"{where}.type: required (latency, bandwidth, reset_peer, timeout, down, redis_drop_reply)"]
        unknown = sorted(set(params) - {"type", "attributes", "stream", "toxicity"})
        if unknown:
            return [f"{where}: unknown field(s) {', '.join(unknown)}; known: type, attributes, stream, toxicity"]
        try:
            Toxic.from_json({**params, "name": "check"})  # the proxy's own validation, before the run
        except ToxicError as e:
            return [f"{where}.{e}"]
        return []
    if action == "delay":
        delay = params.get("delay_ms")
        problems = [f"{where}.{k}: unknown field; known: delay_ms" for k in params if k != "delay_ms"]
        if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
            problems.append(f"{where}.delay_ms: required, an integer >= 0 (milliseconds), got {delay!r}")
        return problems
    if action == "clock_skew":
        offset = params.get("offset_ms")
        problems = [f"{where}.{k}: unknown field; known: offset_ms" for k in params if k != "offset_ms"]
        if isinstance(offset, bool) or not isinstance(offset, int):
            problems.append(f"{where}.offset_ms: required, an integer (milliseconds, may be negative), got {offset!r}")
        return problems
    if params:
        return [f"{where}: {action} takes no params, got {', '.join(sorted(params))}"]
    return []


def parse_chaos(raw: Any, path: str = "chaos") -> tuple[ChaosConfig, list[str]]:
    d = ChaosConfig()
    if raw is None:
        return d, []
    if not isinstance(raw, dict):
        return d, [f"{path}: must be a mapping, got {type(raw).__name__}"]
    known = ("driver", "docker_label", "docker_image", "upstreams", "processes", "containers")
    problems = [f"{path}.{k}: unknown field; known: {', '.join(known)}" for k in raw if k not in known]
    driver = raw.get("driver", d.driver)
    if driver not in DRIVERS:
        problems.append(f"{path}.driver: must be one of {', '.join(DRIVERS)}, got {driver!r}")
        driver = d.driver
    label = raw.get("docker_label", d.docker_label)
    if not isinstance(label, str) or not label.strip() or "=" in label or " " in label:
        problems.append(f"{path}.docker_label: must be a label key without '=' or spaces (its value is the run id), "
                        f"got {label!r}")
        label = d.docker_label
    image = raw.get("docker_image", d.docker_image)
    if not isinstance(image, str) or not image.strip():
        problems.append(f"{path}.docker_image: must be an image tag, got {image!r}")
        image = d.docker_image
    upstreams = _upstreams(raw.get("upstreams"), f"{path}.upstreams", problems)
    processes = _processes(raw.get("processes"), f"{path}.processes", problems)
    containers = _containers(raw.get("containers"), f"{path}.containers", problems)
    # a role is one kind of part: processes (or containers) may share one, not with another kind
    kinds: dict[str, str] = {}
    for kind, parts in (("upstreams", upstreams), ("processes", processes), ("containers", containers)):
        for i, part in enumerate(parts):
            if kinds.setdefault(part.role, kind) != kind:
                problems.append(f"{path}.{kind}[{i}].role: {part.role!r} names one of your {kinds[part.role]} too; "
                                "give each kind of part its own role")
    started = {p.role for p in processes if p.started}
    for i, p in enumerate(processes):
        if not p.started and p.role in started:
            problems.append(f"{path}.processes[{i}].role: {p.role!r} names a process the harness starts too; "
                            "a role is either started by a command or given by pid file")
    return ChaosConfig(driver=driver, docker_label=label, docker_image=image, upstreams=upstreams,
                       processes=processes, containers=containers), problems


def _role_ok(role: Any, where: str, problems: list[str]) -> bool:
    if isinstance(role, str) and role.strip() and role not in HARNESS_ROLES:
        return True
    problems.append(f"{where}.role: must name your part (database, cache, shop, ...), not one of the harness's "
                    f"roles ({', '.join(HARNESS_ROLES)}), got {role!r}")
    return False


def _parts(raw: Any, path: str, fields: tuple[str, ...], problems: list[str], optional: tuple[str, ...] = ()
           ) -> list[tuple[str, dict[str, Any]]]:
    """The entries of a list of the user's parts, each a mapping of ``fields`` (and any of ``optional``)
    whose role is theirs (not the harness's); ``(field path, entry)`` for each one that is."""
    if raw is None:
        return []
    names = ", ".join(fields) + "".join(f", {k}?" for k in optional)
    if not isinstance(raw, list):
        problems.append(f"{path}: must be a list of {{{names}}}, got {type(raw).__name__}")
        return []
    out = []
    for i, entry in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(entry, dict) or not set(fields) <= set(entry) or not set(entry) <= {*fields, *optional}:
            problems.append(f"{where}: must be a mapping of {'exactly ' if not optional else ''}{names}, "
                            f"got {entry!r}")
        elif _role_ok(entry["role"], where, problems):
            out.append((where, entry))
    return out


_PROCESS_FIELDS = ("role", "pidfile", "command", "cwd", "env", "ready_url", "ready_port")


def _processes(raw: Any, path: str, problems: list[str]) -> tuple[GivenProcess, ...]:
    """``chaos.processes``: each ``{role, pidfile}`` or ``{role, command, cwd?, env?, ready_url?, ready_port?}``
    (a field set to null is not given: the run directory's scenario.yaml writes them all)."""
    out = []
    for where, p in _parts(raw, path, ("role",), problems, optional=_PROCESS_FIELDS[1:]):
        given = {k: v for k, v in p.items() if v is not None}
        if ("pidfile" in given) == ("command" in given):
            problems.append(f"{where}: give either pidfile (a process you start) or command (one the harness "
                            f"starts), got {', '.join(given)}")
            continue
        if "pidfile" in given:
            extra = sorted(set(given) - {"role", "pidfile"})
            if extra:
                problems.append(f"{where}: {', '.join(extra)} only with command (a process the harness starts)")
            elif isinstance(given["pidfile"], str) and given["pidfile"].strip():
                out.append(GivenProcess(p["role"], pidfile=given["pidfile"]))
            else:
                problems.append(f"{where}.pidfile: must be the path of a file holding the pid, got {p['pidfile']!r}")
            continue
        found = len(problems)
        command, cwd, env = given["command"], given.get("cwd"), given.get("env")
        if not (isinstance(command, list) and command and all(isinstance(a, str) and a for a in command)):
            problems.append(f"{where}.command: must be a non-empty list of strings (program and arguments, "
                            f"no shell), got {command!r}")
        if cwd is not None and not (isinstance(cwd, str) and cwd.strip()):
            problems.append(f"{where}.cwd: must be a directory path, got {cwd!r}")
        if env is not None and not (isinstance(env, dict) and all(
                isinstance(k, str) and k and isinstance(v, (str, int, float)) and not isinstance(v, bool)
                for k, v in env.items())):
            problems.append(f"{where}.env: must map variable names to strings or numbers, got {env!r}")
        ready_url, ready_port = given.get("ready_url"), given.get("ready_port")
        if ready_url is not None and not _loopback_url(ready_url):
            problems.append(f"{where}.ready_url: must be an http:// URL on loopback (127.0.0.1 or localhost), "
                            f"got {ready_url!r}")
        _port_ok(ready_port, f"{where}.ready_port", problems)
        if ready_url is not None and ready_port is not None:
            problems.append(f"{where}: give ready_url or ready_port, not both")
        if len(problems) == found:
            out.append(GivenProcess(p["role"], command=tuple(command), cwd=cwd,
                                    env=None if env is None else {k: str(v) for k, v in env.items()},
                                    ready_url=ready_url, ready_port=ready_port))
    return tuple(out)


def _containers(raw: Any, path: str, problems: list[str]) -> tuple[GivenContainer, ...]:
    """``chaos.containers``: each ``{role, container, ready_port?}``; the container by name or id."""
    out = []
    for where, c in _parts(raw, path, ("role", "container"), problems, optional=("ready_port",)):
        found = len(problems)
        if not (isinstance(c["container"], str) and c["container"].strip()):
            problems.append(f"{where}.container: must be a container name or id, got {c['container']!r}")
        _port_ok(c.get("ready_port"), f"{where}.ready_port", problems)
        if len(problems) == found:
            out.append(GivenContainer(c["role"], c["container"], c.get("ready_port")))
    return tuple(out)


def _port_ok(port: Any, where: str, problems: list[str]) -> None:
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        problems.append(f"{where}: must be a TCP port (1-65535) on 127.0.0.1, got {port!r}")


def _loopback_url(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        parts = urlsplit(v)
        port = parts.port
    except ValueError:
        return False
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost") and port is not None


def _loopback_address(v: Any) -> bool:
    host, sep, port = v.rpartition(":") if isinstance(v, str) else ("", "", "")
    return bool(sep) and host in ("127.0.0.1", "localhost") and port.isdigit() and 0 < int(port) < 65536


def _upstreams(raw: Any, path: str, problems: list[str]) -> tuple[Upstream, ...]:
    """``chaos.upstreams``: each ``{role, listen, upstream}``, both addresses ``host:port`` on loopback."""
    out = []
    for where, u in _parts(raw, path, ("role", "listen", "upstream"), problems):
        bad = [key for key in ("listen", "upstream") if not _loopback_address(u[key])]
        for key in bad:
            problems.append(f"{where}.{key}: must be host:port on loopback (127.0.0.1 or localhost), got {u[key]!r}")
        if not bad:
            out.append(Upstream(u["role"], u["listen"], u["upstream"]))
    return tuple(out)


def expand(specs: Sequence[FaultSpec], seed: int, horizon_s: float) -> tuple[Fault, ...]:
    """Every occurrence of every spec, with its start time; repeats drawn from ``seed``. Pure.

    Draws happen in the order the specs are written, so adding a fault at the
    end keeps the times of the ones before it.
    """
    rng = random.Random(f"{seed}/faults")  # a str seed hashes the same in every process
    out: list[Fault] = []
    for spec in specs:
        start = spec.start_s
        out.append(spec.fault(start))
        if spec.every_s is None or spec.duration_s is None:
            continue
        until = spec.until_s if spec.until_s is not None else horizon_s
        while True:
            start = round(start + spec.duration_s + rng.uniform(*spec.every_s), 3)
            if start >= until:
                break
            out.append(spec.fault(start))
    return tuple(out)
