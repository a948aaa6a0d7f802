"""The recorder: every client operation as an invoke and a completion, in memory.

A Locust process records into one ``Recorder``; the records are plain tuples in
``oversold.model.history.Op`` field order (``ROW_FIELDS``) so that recording costs one
``list.append`` and shipping a batch to the master is a msgpack of lists.
``to_op`` turns a row back into an ``Op``.

Completions are classified as in docs/internals.md section 3
(``oversold.adapters.outcome``).

Usage::

    rec = Recorder()
    p = rec.invoke(process="buyer-0-1", user_id="buyer-0-1", kind="buyer",
                   op="order", sale_id="moutai", qty=1, key="k1")
    rec.complete(p, classify(201, None), status=201, order_id="17")
    ops = [to_op(row) for row in rec.take()]   # an invoke and an ok
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from oversold.model.history import OP_FIELDS, Op, OpType

ROW_FIELDS: tuple[str, ...] = OP_FIELDS
Row = tuple[Any, ...]

@dataclass(slots=True)
class Pending:
    """An invoked, not yet completed operation (handed back by ``Recorder.invoke``)."""

    op_id: str
    process: str
    user_id: str
    kind: str
    op: str
    sale_id: str
    qty: int
    order_id: str | None
    key: str | None
    started: float  # perf_counter, for the latency
    done: bool = False


@dataclass
class Recorder:
    """In-memory, append-only history buffer of one Locust process.

    ``take()`` hands over (and forgets) what was recorded since the last take;
    ``total`` counts every row ever recorded, so a receiver can tell whether it
    has them all. ``in_flight`` counts invoked operations not yet completed or
    abandoned (the drain before a stop waits for it to reach 0).
    """

    clock: Callable[[], float] = time.time
    perf: Callable[[], float] = time.perf_counter
    total: int = 0
    in_flight: int = 0
    _rows: list[Row] = field(default_factory=list)
    _seq: dict[str, itertools.count] = field(default_factory=dict)

    def next_op_id(self, process: str) -> str:
        """``<process>-<n>``: unique as long as process names are unique across processes."""
        counter = self._seq.get(process)
        if counter is None:
            counter = self._seq[process] = itertools.count(1)
        return f"{process}-{next(counter)}"

    def invoke(
        self,
        *,
        process: str,
        user_id: str,
        kind: str,
        op: str,
        sale_id: str,
        qty: int = 1,
        order_id: str | None = None,
        key: str | None = None,
        op_id: str | None = None,
    ) -> Pending:
        """Record the invoke of an operation and return its handle for ``complete``."""
        p = Pending(
            op_id=op_id or self.next_op_id(process), process=process, user_id=user_id, kind=kind, op=op,
            sale_id=sale_id, qty=qty, order_id=order_id, key=key, started=self.perf(),
        )
        self._append(("invoke", p.op_id, self.clock(), process, user_id, kind, op, sale_id, qty, order_id, key, None, None, None))
        self.in_flight += 1
        return p

    def complete(
        self,
        p: Pending,
        type: OpType,
        *,
        status: int | None = None,
        code: str | None = None,
        order_id: str | None = None,
    ) -> None:
        """Record the completion of ``p`` (once; a second call is ignored)."""
        if p.done:
            return
        p.done = True
        self.in_flight -= 1
        latency_ms = (self.perf() - p.started) * 1000.0
        self._append((
            type, p.op_id, self.clock(), p.process, p.user_id, p.kind, p.op, p.sale_id, p.qty,
            order_id if order_id is not None else p.order_id, p.key, status, code, round(latency_ms, 3),
        ))

    def abandon(self, p: Pending) -> None:
        """The client died mid-request: keep the lone invoke (unknown), stop counting it in flight."""
        if not p.done:
            p.done = True
            self.in_flight -= 1

    def take(self) -> list[Row]:
        """Rows recorded since the last ``take`` (the buffer is swapped, not copied)."""
        rows, self._rows = self._rows, []
        return rows

    def untake(self, rows: list[Row]) -> None:
        """Put back rows that could not be shipped (they go out with the next batch)."""
        self._rows[:0] = rows

    def pending_rows(self) -> int:
        return len(self._rows)

    def _append(self, row: Row) -> None:
        self._rows.append(row)
        self.total += 1


def to_op(row: Sequence[Any]) -> Op:
    """A recorded row (a tuple, or the list it became on the wire) as an ``Op``."""
    return Op(*row)
