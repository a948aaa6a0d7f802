"""A background sampler of a sale's counters, for the run's timeline.

It reads the sale's counters through ``read(sale_id)`` (an adapter's counters
request: ``oversold.orchestrate.run.AnyNode.read_counters``, or ``AdapterClient.send``) and
appends one JSON line per sample to ``timeline.jsonl``: ``{"t": wall seconds,
"available", "held", "sold", ...}`` (every numeric counter the backend reports).
A failed read is a sample with ``"error"`` so gaps (a node down) show on the
timeline. Every sample also carries ``harness_rss_mib``: the resident memory of
the harness (this process, without the backend nodes and Redis it started, and
the processes given to ``watch`` with all their children: Locust's master and
workers), so a long run shows whether it stays flat.

Usage::

    with CounterSampler(nodes.read_counters, "moutai", run_dir / "timeline.jsonl", interval_s=0.2):
        ...  # the sale runs
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Callable

from oversold.adapters.outcome import Outcome
from oversold.infra.procs import rss_mib

Reader = Callable[[str], Outcome]


class CounterSampler:
    """Samples counters on a daemon thread until stopped; the file is flushed per sample."""

    def __init__(self, read: Reader, sale_id: str, path: Path, *, interval_s: float = 0.2) -> None:
        self._read = read
        self._sale_id = sale_id
        self._path = path
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="counter-sampler", daemon=True)
        self.samples = 0
        self._trees: list[int] = []

    def watch(self, pid: int) -> None:
        """Count this process (and its children) in the harness's memory from now on."""
        self._trees = [*self._trees, pid]

    def _loop(self) -> None:
        with open(self._path, "a", encoding="utf-8") as f:
            while not self._stop.is_set():
                sample: dict = {"t": round(time.time(), 3)}
                sample.update(_sample(self._read(self._sale_id)))
                rss = rss_mib(alone=[os.getpid()], trees=self._trees)
                if rss is not None:
                    sample["harness_rss_mib"] = rss
                f.write(json.dumps(sample, separators=(",", ":")) + "\n")
                f.flush()
                self.samples += 1
                self._stop.wait(self._interval)

    def start(self) -> "CounterSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> "CounterSampler":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _sample(outcome: Outcome) -> dict:
    """A sample's fields from one counters read: the numeric counters, or what went wrong.

    >>> _sample(Outcome("ok", 200, None, {"available": 3, "sold": 7, "strategy": "pre_deduct", "async_orders": False}))
    {'available': 3, 'sold': 7}
    >>> _sample(Outcome("info", 503, "unavailable", None)), _sample(Outcome("info", 0, None, None, TimeoutError()))
    ({'error': 'HTTP 503'}, {'error': 'TimeoutError'})
    """
    if outcome.type == "ok" and isinstance(outcome.body, dict):
        return {k: v for k, v in outcome.body.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if outcome.status:
        return {"error": f"HTTP {outcome.status}"}
    return {"error": type(outcome.error).__name__ if outcome.error is not None else "no answer"}


def read_timeline(path: Path) -> list[dict]:
    """The samples of a ``timeline.jsonl`` (empty when the file is missing)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
