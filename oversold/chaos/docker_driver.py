"""The docker driver: node faults on containers labelled for this run, through the Docker SDK.

A ``DockerDriver`` is made with the run's label (``oversold.run=<id>``) and
refuses -- with ``TargetRefused``, before doing anything -- every container that
does not carry it, when it is registered and again at every inject and heal.
Containers run with host networking only, so their ports are loopback ports
like those of the process driver's nodes.

| action    | inject                      | heal                             |
| --------- | --------------------------- | -------------------------------- |
| `kill`    | ``docker kill`` (SIGKILL)   | ``docker start``, wait for port  |
| `pause`   | ``docker pause`` (freezer)  | ``docker unpause``               |
| `restart` | ``docker restart``          | nothing                          |
| `stop`    | ``docker stop``             | ``docker start``, wait for port  |

Usage::

    client = docker.from_env()
    label = "oversold.run=r1"
    c = run_container(client, "oversold/redis:local", ["--bind", "127.0.0.1", "--port", "7001"],
                      label=label, name="r1-redis")
    driver = DockerDriver(client, label=label)
    driver.register("redis-primary", "r1-redis", port=7001)
    inj = driver.inject(Fault("pause", "redis-primary", 0))
    driver.heal(inj)
    remove_labelled(client, label)     # teardown: this run's containers, and only those
"""

from __future__ import annotations

import itertools
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import docker
import docker.errors
from docker.models.containers import Container

from oversold.errors import ChaosError, FaultSpecError, TargetRefused
from oversold.infra.procs import wait_for_port
from oversold.model.fault import NODE_ACTIONS, Fault, check_fault, pick_targets

from .driver import Hit, Injection


def parse_label(label: str) -> tuple[str, str | None]:
    """``"key=value"`` -> ``("key", "value")``; ``"key"`` -> ``("key", None)``; empty is refused."""
    key, sep, value = label.partition("=")
    if not key.strip():
        raise ValueError(f"a run label needs a key (got {label!r}): an empty one would match every container")
    return key, (value if sep else None)


def carries(container: Container, label: str) -> bool:
    key, value = parse_label(label)
    labels = container.labels or {}
    return key in labels and (value is None or labels[key] == value)


def run_container(client: docker.DockerClient, image: str, command: Sequence[str] | None = None, *,
                  label: str, name: str | None = None, labels: Mapping[str, str] | None = None,
                  **kwargs: Any) -> Container:
    """Start a detached container with host networking, carrying ``label`` (and ``labels``).

    Host networking is the only network here: there is no bridge on the test
    engine, and it keeps the container's ports on loopback beside everything else.
    """
    if "network_mode" in kwargs or "network" in kwargs or "ports" in kwargs:
        raise ValueError("containers run with host networking only")
    key, value = parse_label(label)
    all_labels = {**dict(labels or {}), key: value or ""}
    return client.containers.run(image, list(command) if command is not None else None, detach=True,
                                 network_mode="host", labels=all_labels, name=name, **kwargs)


def remove_labelled(client: docker.DockerClient, label: str) -> list[str]:
    """Force-remove every container carrying ``label``; returns their ids. Nothing else is touched."""
    parse_label(label)  # refuses an empty label before the filter could match everything
    removed = []
    for c in client.containers.list(all=True, filters={"label": label}):
        if not carries(c, label):  # the engine filtered; check again on our side before removing
            continue
        try:
            c.remove(force=True)
            removed.append(c.id)
        except docker.errors.NotFound:
            pass
    return removed


@dataclass
class ContainerTarget:
    role: str
    index: int
    id: str
    name: str
    port: int | None = None


class _ContainerFaults(ABC):
    """Kill, pause, restart or stop registered containers; which containers may be touched at all is the
    subclass's ``_refusal``, asked when a container is registered and again at every inject and heal."""

    name = "docker"

    def __init__(self, client: docker.DockerClient, *, stop_timeout_s: int = 5,
                 ready_timeout_s: float = 20.0, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self._stop_timeout_s = stop_timeout_s
        self._ready_timeout_s = ready_timeout_s
        self._clock = clock
        self._targets: dict[str, list[ContainerTarget]] = {}
        self._healed: set[str] = set()
        self._seq = itertools.count(1)
        self._lock = threading.RLock()

    @abstractmethod
    def _refusal(self, c: Container) -> str | None:
        """Why ``c`` is not this driver's to touch; None when it is."""

    # -- registration --------------------------------------------------------

    def _get(self, ref: str) -> Container:
        """The container ``ref`` (name or id), only if this driver may touch it."""
        try:
            c = self.client.containers.get(ref)
        except docker.errors.NotFound:
            raise TargetRefused(f"no container {ref!r}") from None
        refusal = self._refusal(c)
        if refusal is not None:
            raise TargetRefused(f"container {c.name} ({c.id[:12]}) {refusal}")
        return c

    def register(self, role: str, container: str | Container, *, port: int | None = None) -> int:
        """Register one container (name, id or object) under ``role``; refused if not this driver's to touch."""
        if not role:
            raise FaultSpecError("a target needs a role")
        ref = container.id if isinstance(container, Container) else container
        c = self._get(ref)
        with self._lock:
            targets = self._targets.setdefault(role, [])
            targets.append(ContainerTarget(role, len(targets), c.id, c.name, port))
            return len(targets) - 1

    def roles(self) -> dict[str, int]:
        with self._lock:
            return {role: len(ts) for role, ts in self._targets.items()}

    # -- faults --------------------------------------------------------------

    def inject(self, fault: Fault) -> Injection:
        check_fault("docker", fault, NODE_ACTIONS)
        with self._lock:
            chosen = pick_targets("docker", fault, self._targets)
            containers = [self._get(t.id) for t in chosen]  # every label checked before anything is done
            started_at = self._clock()
            hits = []
            for t, c in zip(chosen, containers):
                hits.append(Hit(t.role, t.index, "container", c.id, c.name))
                try:
                    self._do(fault.action, c, t)
                except docker.errors.APIError as e:
                    raise ChaosError(f"docker {fault.action} {c.name}: {e.explanation or e}") from e
            return Injection(f"{self.name}-{next(self._seq)}", self.name, fault, tuple(hits), started_at)

    def _do(self, action: str, c: Container, t: ContainerTarget) -> None:
        if c.status == "paused" and action != "pause":
            c.unpause()  # the engine will not stop or kill a frozen container
        if action == "kill":
            c.kill()
        elif action == "pause":
            c.pause()
        elif action == "stop":
            c.stop(timeout=self._stop_timeout_s)
        elif action == "restart":
            c.restart(timeout=self._stop_timeout_s)
            self._wait_ready(c, t)

    def heal(self, injection: Injection) -> None:
        with self._lock:
            if injection.id in self._healed:
                return
            action = injection.fault.action
            for hit in injection.hits:
                c = self._get(hit.ident)
                try:
                    if action == "pause" and c.status == "paused":
                        c.unpause()
                    elif action in ("kill", "stop") and c.status not in ("running", "paused", "restarting"):
                        c.start()
                        self._wait_ready(c, self._targets[hit.role][hit.index])
                except docker.errors.APIError as e:
                    raise ChaosError(f"docker heal of {action} {c.name}: {e.explanation or e}") from e
            self._healed.add(injection.id)

    def _wait_ready(self, c: Container, t: ContainerTarget) -> None:
        if t.port is None:
            return
        if not wait_for_port(t.port, timeout=self._ready_timeout_s):
            c.reload()
            tail = c.logs(tail=20).decode(errors="replace")
            raise ChaosError(f"container {c.name} did not come back on port {t.port} (status {c.status}): {tail}")


class DockerDriver(_ContainerFaults):
    """Kill, pause, restart or stop containers that carry the run's label.

    Usage::

        driver = DockerDriver(docker.from_env(), label="oversold.run=r1")
        driver.register_matching("backend", "oversold.role=backend")   # all of them, sorted by name
        with Nemesis(driver) as nemesis:
            nemesis.inject(Fault("kill", "backend", 1, duration_s=3))
    """

    name = "docker"

    def __init__(self, client: docker.DockerClient, *, label: str, **kwargs: Any) -> None:
        parse_label(label)
        self.label = label
        super().__init__(client, **kwargs)

    def _refusal(self, c: Container) -> str | None:
        if carries(c, self.label):
            return None
        return f"does not carry the label {self.label!r}: oversold only touches containers labelled for this run"

    def register_matching(self, role: str, selector: str) -> int:
        """Register every container with the run label AND ``selector`` (a label), by name order; returns how many."""
        parse_label(selector)
        found = self.client.containers.list(all=True, filters={"label": [self.label, selector]})
        found = sorted((c for c in found if carries(c, self.label) and carries(c, selector)), key=lambda c: c.name)
        for c in found:
            self.register(role, c)
        return len(found)


class GivenContainerDriver(_ContainerFaults):
    """The same faults on the user's own containers in a ``--host`` run (``chaos.containers``): the ones
    named in the scenario, by the id each name had at registration, and no other. They are the user's:
    nothing here creates or removes one; every fault is healed at the end of the run.

    Usage::

        driver = GivenContainerDriver(docker.from_env())
        driver.register("shop", "my-shop", port=8080)     # resolved to its id now
        inj = driver.inject(Fault("kill", "shop", 0))     # docker kill
        driver.heal(inj)                                  # docker start, wait for port 8080
    """

    name = "container"

    def __init__(self, client: docker.DockerClient, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self._given: set[str] = set()

    def register(self, role: str, container: str | Container, *, port: int | None = None) -> int:
        ref = container.id if isinstance(container, Container) else container
        try:
            self._given.add(self.client.containers.get(ref).id)
        except docker.errors.NotFound:
            raise TargetRefused(f"no container {ref!r}") from None
        return super().register(role, ref, port=port)

    def _refusal(self, c: Container) -> str | None:
        return None if c.id in self._given else "was not named in chaos.containers"
