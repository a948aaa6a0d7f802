"""The fault schedule run beside the swarm, and the run's fault log (``faults.jsonl``).

``FaultRunner`` is one thread: it waits until the load has started (the
sale's counters move), then drives ``Nemesis.run`` over the planned schedule,
so ``start_s`` counts from the first holds rather than from Locust's start-up.
An inject that fails (a node that did not come back) stops the schedule and
is kept in ``error`` for the orchestrator to raise; healing everything is
the ``Nemesis``'s ``heal_all``, which the orchestrator calls after ``stop``.

``faults.jsonl`` holds one line per injection, rewritten (atomically) each
time the timeline changes, so a live display can read it during the run::

    {"start": 1718000000.12, "end": 1718000001.63, "action": "kill", "role": "backend",
     "target": "node2", "indices": [1], "driver": "process", "injection_id": "process-1",
     "hits": [{"role", "index", "kind", "ident", "name"}], "params": {}, "start_s": 2.0, "duration_s": 1.5}

``end`` is null while the fault is active (or if its heal failed: then
``heal_error`` says why); an inject that failed is a line with ``end`` equal
to ``start`` and ``error``. ``oversold.analysis.html`` shades each period.

Usage::

    runner = FaultRunner(nemesis, schedule, load_started=lambda: sold_or_held() > 0,
                         log=FaultLog(run_dir / "faults.jsonl", nemesis))
    runner.start()
    ...                                    # the swarm runs
    runner.stop(); nemesis.heal_all(); runner.log.write()
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from oversold.model.fault import Fault

from .nemesis import Nemesis, TimelineEvent

#: how long to wait for the load to show on the counters before starting the schedule anyway
LOAD_WAIT_S = 15.0


def fault_periods(timeline: Sequence[TimelineEvent]) -> list[dict[str, Any]]:
    """One line per injection (and per failed inject) from the nemesis's timeline. Pure."""
    rows: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for ev in timeline:
        if ev.event in ("inject", "inject-error"):
            row = _row(ev)
            if ev.event == "inject-error":
                row.update(end=ev.time, error=ev.detail)
            elif ev.injection_id is not None:
                by_id[ev.injection_id] = row
            rows.append(row)
        elif ev.event == "heal" and ev.injection_id in by_id:
            by_id[ev.injection_id]["end"] = ev.time
            by_id[ev.injection_id].pop("heal_error", None)
        elif ev.event == "heal-error" and ev.injection_id in by_id:
            by_id[ev.injection_id]["heal_error"] = ev.detail
    return rows


def _row(ev: TimelineEvent) -> dict[str, Any]:
    f = ev.fault
    names = [h.name or h.ident for h in ev.hits]
    indices = list(f.target) if isinstance(f.target, tuple) else f.target
    return {
        "start": ev.time, "end": None, "action": f.action, "role": f.role,
        # what a reader wants to see ("kill node2"); the indices stay for replay and tests
        "target": ",".join(names) if names else str(indices),
        "indices": indices, "driver": ev.driver, "injection_id": ev.injection_id,
        "hits": [h.to_dict() for h in ev.hits], "params": dict(f.params),
        "start_s": f.start_s, "duration_s": f.duration_s,
    }


class FaultLog:
    """``faults.jsonl`` of one run, written whole each time (a temp file renamed over it)."""

    def __init__(self, path: Path, nemesis: Nemesis) -> None:
        self.path = path
        self._nemesis = nemesis
        self._written = -1
        self._lock = threading.Lock()

    def write(self, *, force: bool = False) -> list[dict[str, Any]]:
        timeline = self._nemesis.timeline
        with self._lock:
            rows = fault_periods(timeline)
            if force or len(timeline) != self._written:
                tmp = self.path.with_suffix(".jsonl.tmp")
                tmp.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows), encoding="utf-8")
                os.replace(tmp, self.path)
                self._written = len(timeline)
            return rows


class FaultRunner:
    """Runs a planned schedule on a thread; ``error`` holds what stopped it early, if anything."""

    def __init__(self, nemesis: Nemesis, schedule: Sequence[Fault], *, log: FaultLog,
                 load_started: Callable[[], bool], tick_s: float = 0.05) -> None:
        self.nemesis = nemesis
        self.schedule = tuple(schedule)
        self.log = log
        self._load_started = load_started
        self._tick_s = tick_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-runner", daemon=True)
        self.error: BaseException | None = None
        self.t0: float | None = None  # wall clock of the schedule's 0

    def start(self) -> "FaultRunner":
        self.log.write(force=True)  # an empty log from the start: the run has faults.jsonl even if none ran
        if self.schedule:
            self._thread.start()
        return self

    def _run(self) -> None:
        try:
            deadline = time.monotonic() + LOAD_WAIT_S
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    if self._load_started():
                        break
                except Exception:  # noqa: BLE001 - a failed look is "not yet"
                    pass
                self._stop.wait(0.05)
            self.t0 = time.time()
            t0 = time.monotonic()
            while not self._stop.is_set():
                done = self.nemesis.step(self.schedule, time.monotonic() - t0)
                self.log.write()
                if done:
                    return
                self._stop.wait(self._tick_s)
        except BaseException as e:  # noqa: BLE001 - handed to the orchestrator's thread
            self.error = e
        finally:
            self.log.write()

    def stop(self) -> None:
        """Stop injecting (an inject under way finishes first); healing is ``Nemesis.heal_all``."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
