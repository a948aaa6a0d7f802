"""The sync driver: faults of the front-to-warehouse stock sync worker.

The worker reads two control keys from Redis on every tick (their names are
the worker's, passed in: ``reference_backend.keys.SYNC_DELAY_MS`` and
``SYNC_STALL``), so a delay or a stall is a key the driver sets and the heal
takes back. Node faults of the worker process (kill, pause, restart, stop) go
to a ``ProcessDriver`` that has the worker registered under the same role.

| action  | params          | inject                                  | heal                                   |
| ------- | --------------- | --------------------------------------- | -------------------------------------- |
| `delay` | `delay_ms` (int) | SET delay key: changes are applied no earlier than this after they happened | the key's earlier value back |
| `stall` | none            | SET stall key = 1: nothing is applied   | the key's earlier value back           |
| `kill`, `pause`, `restart`, `stop` | none | as ``ProcessDriver``           | as ``ProcessDriver``                   |

A heal puts the earlier value back only if the key still holds what this
injection wrote: an overlapping fault that changed it since keeps its own.

Usage::

    procs = ProcessDriver(state=state); procs.register("sync", worker, restart=...)
    driver = SyncDriver(redis.Redis.from_url(url), delay_key="os:sync:delay_ms", stall_key="os:sync:stall",
                        processes=procs)
    inj = driver.inject(Fault("stall", "sync", 0, duration_s=2))
    driver.heal(inj)
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Callable

import redis

from oversold.errors import ChaosError, FaultSpecError
from oversold.model.fault import NODE_ACTIONS, Fault, check_fault

from .driver import Hit, Injection
from .process import ProcessDriver

SYNC_ACTIONS = NODE_ACTIONS + ("delay", "stall")


class SyncDriver:
    """Delay or stall the sync worker through its Redis keys; its process faults through a ``ProcessDriver``."""

    name = "sync"

    def __init__(self, client: redis.Redis, *, delay_key: str, stall_key: str, processes: ProcessDriver,
                 role: str = "sync", clock: Callable[[], float] = time.time) -> None:
        if processes.roles().get(role, 0) != 1:
            raise FaultSpecError(f"sync driver: the process driver must have exactly one {role!r} target")
        self.client = client
        self.role = role
        self._keys = {"delay": delay_key, "stall": stall_key}
        self._processes = processes
        self._clock = clock
        self._inner: dict[str, Injection] = {}  # our injection id -> the process driver's
        self._undo: dict[str, tuple[str, bytes, bytes | None]] = {}  # id -> (key, what we wrote, what was there)
        self._healed: set[str] = set()
        self._seq = itertools.count(1)
        self._lock = threading.RLock()

    def roles(self) -> dict[str, int]:
        return {self.role: 1}

    def inject(self, fault: Fault) -> Injection:
        check_fault("sync", fault, SYNC_ACTIONS, takes_params=True)
        if fault.role != self.role:
            raise FaultSpecError(f"sync driver: no targets for role {fault.role!r} (it has {self.role!r})")
        fault.indices(1)
        with self._lock:
            inj_id = f"{self.name}-{next(self._seq)}"
            if fault.action in NODE_ACTIONS:
                inner = self._processes.inject(fault)
                self._inner[inj_id] = inner
                return Injection(inj_id, self.name, fault, inner.hits, inner.started_at)
            value = _value(fault)
            key = self._keys[fault.action]
            started_at = self._clock()
            try:
                # GET and SET in one transaction, so the value we put back is the one we replaced
                with self.client.pipeline(transaction=True) as p:
                    p.get(key)
                    p.set(key, value)
                    before, _ = p.execute()
            except redis.RedisError as e:
                raise ChaosError(f"sync {fault.action}: cannot set {key}: {e}") from e
            self._undo[inj_id] = (key, value, before)
            hit = Hit(self.role, 0, "key", key, f"{key}={value.decode()}")
            return Injection(inj_id, self.name, fault, (hit,), started_at)

    def heal(self, injection: Injection) -> None:
        with self._lock:
            if injection.id in self._healed:
                return
            if injection.id in self._inner:
                self._processes.heal(self._inner[injection.id])
            elif injection.id in self._undo:
                key, ours, before = self._undo[injection.id]
                try:
                    with self.client.pipeline(transaction=True) as p:
                        p.watch(key)  # put back only if nobody changed it since
                        if p.get(key) == ours:
                            p.multi()
                            if before is None:
                                p.delete(key)
                            else:
                                p.set(key, before)
                            p.execute()
                except redis.WatchError:
                    pass  # changed between our read and write by another fault: theirs stands
                except redis.RedisError as e:
                    raise ChaosError(f"sync heal of {injection.fault.action}: cannot restore {key}: {e}") from e
            self._healed.add(injection.id)


def _value(fault: Fault) -> bytes:
    if fault.action == "stall":
        if fault.params:
            raise FaultSpecError(f"sync driver: stall takes no params (got {', '.join(fault.params)})")
        return b"1"
    delay = fault.params.get("delay_ms")
    if set(fault.params) != {"delay_ms"} or isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
        raise FaultSpecError(f"sync driver: delay takes params {{delay_ms: integer >= 0}}, got {dict(fault.params)}")
    return str(delay).encode()
