"""The clock driver: set one node's own clock off by an offset (a host whose NTP broke).

Each registered target is a node's clock file (``reference_backend.clock``: the
node started with ``--clock-file PATH`` adds the offset in milliseconds written
there to its wall clock, and reads the file again whenever it changes). The
file is written whole (a temp file renamed over it), so a node never reads
half an offset.

| action       | params                 | inject                          | heal                        |
| ------------ | ---------------------- | ------------------------------- | --------------------------- |
| `clock_skew` | `offset_ms` (int, +/-) | the offset into the node's file | the offset it had before    |

Why not libfaketime: Debian's libfaketime 0.9.10 under a Python node either
fakes the monotonic clock too (a changed offset then jumps asyncio's timers,
and ``threading.Event.wait`` with a timeout hangs) or, with
``FAKETIME_DONT_FAKE_MONOTONIC=1``, makes ``time.sleep`` fail with EINVAL.
The node option moves exactly the wall clock a backend could wrongly use.

Usage::

    driver = ClockDriver()
    driver.register("clock", run_dir / "clock" / "node1.offset_ms")
    inj = driver.inject(Fault("clock_skew", "clock", 0, params={"offset_ms": 60_000}))
    driver.heal(inj)                         # back to 0
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path
from typing import Callable

from oversold.errors import ChaosError, FaultSpecError
from oversold.model.fault import Fault, check_fault, pick_targets

from .driver import Hit, Injection

CLOCK_ACTIONS = ("clock_skew",)


def write_offset(path: Path, offset_ms: int) -> None:
    """Write ``offset_ms`` into a node's clock file, whole (renamed over it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{offset_ms}\n", encoding="ascii")
    os.replace(tmp, path)


def read_offset(path: Path) -> int:
    try:
        text = path.read_text(encoding="ascii").strip()
        return int(text) if text else 0
    except (OSError, ValueError):
        return 0


class ClockDriver:
    """Skew the clocks of registered nodes through their clock files."""

    name = "clock"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._targets: dict[str, list[Path]] = {}
        self._undo: dict[str, list[tuple[Path, int, int]]] = {}  # id -> (file, ours, before)
        self._healed: set[str] = set()
        self._seq = itertools.count(1)
        self._clock = clock
        self._lock = threading.RLock()

    def register(self, role: str, path: Path) -> int:
        """Register a node's clock file (created with offset 0 if missing); returns its index."""
        with self._lock:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                write_offset(path, 0)
            targets = self._targets.setdefault(role, [])
            targets.append(path)
            return len(targets) - 1

    def roles(self) -> dict[str, int]:
        with self._lock:
            return {role: len(ts) for role, ts in self._targets.items()}

    def inject(self, fault: Fault) -> Injection:
        check_fault("clock", fault, CLOCK_ACTIONS, takes_params=True)
        offset = fault.params.get("offset_ms")
        if set(fault.params) != {"offset_ms"} or isinstance(offset, bool) or not isinstance(offset, int):
            raise FaultSpecError(f"clock driver: clock_skew takes params {{offset_ms: integer}}, got "
                                 f"{dict(fault.params)}")
        with self._lock:
            paths = pick_targets("clock", fault, self._targets)
            started_at = self._clock()
            undo, hits = [], []
            for i, path in zip(fault.indices(len(self._targets[fault.role])), paths):
                before = read_offset(path)
                try:
                    write_offset(path, offset)
                except OSError as e:
                    raise ChaosError(f"clock_skew: cannot write {path}: {e}") from e
                undo.append((path, offset, before))
                hits.append(Hit(fault.role, i, "file", str(path), f"{path.stem} {offset:+d} ms"))
            inj_id = f"{self.name}-{next(self._seq)}"
            self._undo[inj_id] = undo
            return Injection(inj_id, self.name, fault, tuple(hits), started_at)

    def heal(self, injection: Injection) -> None:
        with self._lock:
            if injection.id in self._healed:
                return
            for path, ours, before in self._undo.get(injection.id, []):
                if read_offset(path) == ours:  # an overlapping skew that wrote since keeps its own
                    try:
                        write_offset(path, before)
                    except OSError as e:
                        raise ChaosError(f"clock_skew heal: cannot write {path}: {e}") from e
            self._healed.add(injection.id)
