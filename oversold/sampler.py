"""A background sampler of a sale's counters, for the run's timeline.

It polls ``GET /v1/sales/{id}`` through the contract client and appends one JSON
line per sample to ``timeline.jsonl``: ``{"t": wall seconds, "available", "held",
"sold", ...}`` (every numeric counter the backend reports). A failed read is a
sample with ``"error"`` so gaps (a node down) show on the timeline.

Usage::

    with CounterSampler(admin, "moutai", run_dir / "timeline.jsonl", interval_s=0.2):
        ...  # the sale runs
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Callable

from .contract import TransportError

Reader = Callable[[str], tuple[int, dict]]


class CounterSampler:
    """Samples counters on a daemon thread until stopped; the file is flushed per sample."""

    def __init__(self, admin: object, sale_id: str, path: Path, *, interval_s: float = 0.2) -> None:
        self._read: Reader = admin.sale  # type: ignore[attr-defined]
        self._sale_id = sale_id
        self._path = path
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="counter-sampler", daemon=True)
        self.samples = 0

    def _loop(self) -> None:
        with open(self._path, "a", encoding="utf-8") as f:
            while not self._stop.is_set():
                sample: dict = {"t": round(time.time(), 3)}
                try:
                    status, body = self._read(self._sale_id)
                    if status == 200:
                        sample.update({k: v for k, v in body.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
                    else:
                        sample["error"] = f"HTTP {status}"
                except TransportError as e:
                    sample["error"] = type(e).__name__
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


def read_timeline(path: Path) -> list[dict]:
    """The samples of a ``timeline.jsonl`` (empty when the file is missing)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
