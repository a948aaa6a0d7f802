"""The collector: the master's (or local runner's) side of the history, spooled to disk as it comes.

Workers ship batches of recorded rows during the run and a *final* batch that
carries their running ``total`` (every row they ever recorded). The collector
knows it has everything from a worker when the rows received from it equal the
largest total it announced; ``incomplete`` names the workers it still waits for.

Rows are never held for the whole run: each batch is appended to its worker's
spool file (msgpack frames, about 200 bytes a row) the moment it arrives, so the
master's memory stays flat however long the run. ``write`` merges the spools,
each in time order already (a process records in clock order), into one
``history.jsonl`` (and its columnar twin ``history.cols``), streaming; ``ops`` reads them back for the checker.

Usage::

    c = Collector()
    c.add("w1", rows[:10])
    c.add("w1", rows[10:], total=len(rows))     # the final batch
    assert c.incomplete({"w1"}) == {}
    c.write(Path("history.jsonl"))
    ops = c.ops()
"""

from __future__ import annotations

import heapq
import os
import shutil
import struct
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import msgspec

from oversold.model.history import Op, write_history_stream
from oversold.model.history_cols import cols_path

from .recorder import to_op

_FRAME = struct.Struct("<I")  # a batch's length before it: the spool is read back a batch at a time
_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(list[list[Any]]).decode


@dataclass
class Collector:
    """Rows from every process of the swarm, spooled per worker, with per-worker completeness counts.

    ``spool_dir`` is where the spool files go (a private temporary directory by
    default, removed when the collector is).
    """

    spool_dir: Path | None = None
    received: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)  # worker -> largest announced total
    written_rows: int = -1  # how many rows the last write had (-1: never written)
    _files: dict[str, Any] = field(default_factory=dict)

    def add(self, worker: str, rows: Sequence[Sequence[Any]], total: int | None = None) -> None:
        if rows:
            f = self._files.get(worker)
            if f is None:
                f = self._files[worker] = open(self._spool_path(worker), "ab")
            # a batch in time order, so each spool is too (a clock stepped back stays within its batch)
            batch = sorted(rows, key=_row_order)
            payload = _ENCODE(batch)
            f.write(_FRAME.pack(len(payload)))
            f.write(payload)
        self.received[worker] = self.received.get(worker, 0) + len(rows)
        if total is not None:
            self.totals[worker] = max(total, self.totals.get(worker, 0))

    @property
    def count(self) -> int:
        """Rows received from every worker so far."""
        return sum(self.received.values())

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
        return self.written_rows != self.count

    def rows(self) -> Iterator[list[Any]]:
        """Every row, merged from the spools in time order (streaming: one batch per worker in memory)."""
        return heapq.merge(*(self._spool_rows(w) for w in sorted(self._files)), key=_row_order)

    def ops(self) -> list[Op]:
        """Every row as an ``Op``, in time order (what the checker reads)."""
        return [to_op(r) for r in self.rows()]

    def write(self, path: Path) -> int:
        """Write every row as history.jsonl, atomically (readers never see half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        count = self.count
        n = write_history_stream(tmp, (to_op(r) for r in self.rows()))
        if cols_path(tmp).exists():  # its columnar twin, which names the same bytes
            os.replace(cols_path(tmp), cols_path(path))
        else:
            cols_path(path).unlink(missing_ok=True)
        os.replace(tmp, path)
        self.written_rows = count
        return n

    # -- the spools --------------------------------------------------------------------

    def _spool_path(self, worker: str) -> Path:
        if self.spool_dir is None:
            self.spool_dir = Path(tempfile.mkdtemp(prefix="oversold-spool-"))
            weakref.finalize(self, shutil.rmtree, str(self.spool_dir), True)
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in worker)
        return self.spool_dir / f"{safe}-{len(self._files)}.spool"

    def _spool_rows(self, worker: str) -> Iterator[list[Any]]:
        f = self._files[worker]
        f.flush()
        with open(f.name, "rb") as r:
            while True:
                head = r.read(_FRAME.size)
                if len(head) < _FRAME.size:
                    return
                (size,) = _FRAME.unpack(head)
                yield from _DECODE(r.read(size))


def _row_order(row: Sequence[Any]) -> tuple[float, bool]:
    return (row[2], row[0] != "invoke")  # history_order (oversold.model.history) on a row

