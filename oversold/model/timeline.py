"""What happened during a run besides the history: counter samples (``timeline.jsonl``) and faults (``faults.jsonl``).

Both files are written while the run goes on, so a process killed mid-write may
leave a torn last line: reading them is tolerant (a bad line is skipped), and
each row is parsed into a typed value once, here, for the metrics and the report.

Usage::

    samples = read_timeline(run_dir / "timeline.jsonl")
    [s.sold for s in samples if s.error is None]
    periods = read_faults(run_dir / "faults.jsonl")
    periods[0].span(run_end)      # (start, end) in wall seconds
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

Number = float | int
TIMELINE_FILE, FAULTS_FILE = "timeline.jsonl", "faults.jsonl"  # in a run directory


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class TimelineSample:
    """One read of a sale's counters during the run: when (wall seconds) and what, or why the read failed.

    Usage::

        s = TimelineSample(t=1718000000.2, counters={"available": 3, "held": 1, "sold": 6})
        s.sold        # 6
    """

    t: float
    counters: Mapping[str, Number] = field(default_factory=dict)  # the numeric counters the read returned
    error: str | None = None  # the read failed: the report breaks its lines here

    def get(self, name: str) -> Number | None:
        return self.counters.get(name)

    @property
    def available(self) -> Number | None:
        return self.counters.get("available")

    @property
    def held(self) -> Number | None:
        return self.counters.get("held")

    @property
    def sold(self) -> Number | None:
        return self.counters.get("sold")

    @property
    def sync_lag_ms(self) -> Number | None:
        return self.counters.get("sync_lag_ms")

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"t": self.t, **self.counters}
        if self.error is not None:
            row["error"] = self.error
        return row


def parse_sample(row: Mapping[str, Any]) -> TimelineSample | None:
    """A sample from its JSON row; None for a row without a numeric ``t`` (it cannot be placed in time)."""
    t = row.get("t")
    if not _number(t):
        return None
    error = row.get("error")
    counters = {k: v for k, v in row.items() if k not in ("t", "error") and _number(v)}
    return TimelineSample(float(t), counters, str(error) if error is not None else None)


def parse_timeline(rows: Iterable[Mapping[str, Any]]) -> tuple[TimelineSample, ...]:
    """Samples in time order; rows that cannot be placed in time are left out."""
    samples = [s for s in (parse_sample(r) for r in rows) if s is not None]
    return tuple(sorted(samples, key=lambda s: s.t))


@dataclass(frozen=True)
class FaultPeriod:
    """One injected fault as ``faults.jsonl`` records it: when it started and ended, what and where.

    ``end`` is None for a fault never healed (it lasts until the run's end);
    ``error`` is set when the injection failed. ``row`` keeps the whole record
    (hits, params, indices) for the report and for replay.

    Usage::

        p = FaultPeriod(start=10.0, end=12.5, action="kill", role="backend", target="node1")
        p.span(run_end=20.0)    # (10.0, 12.5)
        p.title                 # "kill backend node1"
    """

    start: float
    end: float | None = None
    action: str | None = None
    role: str | None = None
    target: str | None = None
    error: str | None = None
    row: Mapping[str, Any] = field(default_factory=dict)

    def span(self, run_end: float | None) -> tuple[float, float]:
        """(start, end); an unhealed fault lasts until the run's end (or is a point without one)."""
        end = self.end if self.end is not None else (run_end if run_end is not None else self.start)
        return self.start, max(self.start, end)

    @property
    def title(self) -> str:
        return " ".join(str(v) for v in (self.action, self.role, self.target) if v is not None) or "fault"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.row) if self.row else {"start": self.start, "end": self.end, "action": self.action,
                                                "role": self.role, "target": self.target, "error": self.error}


def parse_fault(row: Mapping[str, Any]) -> FaultPeriod | None:
    """A fault period from its JSON row; None for a row without a numeric ``start``."""
    start = row.get("start")
    if not _number(start):
        return None
    end = row.get("end")

    def text(key: str) -> str | None:
        v = row.get(key)
        return None if v is None else str(v)

    return FaultPeriod(start=float(start), end=float(end) if _number(end) else None, action=text("action"),
                       role=text("role"), target=text("target"), error=text("error"), row=dict(row))


def parse_faults(rows: Iterable[Mapping[str, Any]]) -> tuple[FaultPeriod, ...]:
    return tuple(p for p in (parse_fault(r) for r in rows) if p is not None)


def read_jsonl_tolerant(path: Path) -> list[dict[str, Any]]:
    """Objects of a JSON-lines file written while a run went on; a torn or bad line is skipped.

    A sampler or a chaos driver killed mid-write leaves a partial last line:
    that must not make a saved run unreadable. Missing file: empty list.
    """
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_timeline(path: Path) -> tuple[TimelineSample, ...]:
    return parse_timeline(read_jsonl_tolerant(path))


def read_faults(path: Path) -> tuple[FaultPeriod, ...]:
    return parse_faults(read_jsonl_tolerant(path))
