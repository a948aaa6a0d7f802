"""The collector: the master's (or local runner's) side of the history.

Workers ship batches of recorded rows during the run and a *final* batch that
carries their running ``total`` (every row they ever recorded). The collector
knows it has everything from a worker when the rows received from it equal the
largest total it announced; ``incomplete`` names the workers it still waits for.
Pure bookkeeping, no I/O but ``write``.

Usage::

    c = Collector()
    c.add("w1", rows[:10])
    c.add("w1", rows[10:], total=len(rows))     # the final batch
    assert c.incomplete({"w1"}) == {}
    c.write(Path("history.jsonl"))
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from oversold.model.history import write_history

from .recorder import to_op


@dataclass
class Collector:
    """Rows from every process of the swarm, with per-worker completeness counts."""

    rows: list[Sequence[Any]] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)  # worker -> largest announced total
    written_rows: int = -1  # how many rows the last write had (-1: never written)

    def add(self, worker: str, rows: Sequence[Sequence[Any]], total: int | None = None) -> None:
        self.rows.extend(rows)
        self.received[worker] = self.received.get(worker, 0) + len(rows)
        if total is not None:
            self.totals[worker] = max(total, self.totals.get(worker, 0))

    def workers(self) -> set[str]:
        return set(self.received) | set(self.totals)

    def incomplete(self, expected: Iterable[str]) -> dict[str, str]:
        """Workers (of ``expected`` and of those that sent anything) whose rows are not all in, with why."""
        out: dict[str, str] = {}
        for w in sorted(set(expected) | self.workers()):
            got = self.received.get(w, 0)
            total = self.totals.get(w)
            if total is None:
                out[w] = f"no final batch yet ({got} rows so far)"
            elif got < total:
                out[w] = f"{got} of {total} rows"
        return out

    @property
    def dirty(self) -> bool:
        return self.written_rows != len(self.rows)

    def write(self, path: Path) -> int:
        """Write every row as history.jsonl, atomically (readers never see half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        n = write_history(tmp, (to_op(r) for r in self.rows))
        os.replace(tmp, path)
        self.written_rows = len(self.rows)
        return n
