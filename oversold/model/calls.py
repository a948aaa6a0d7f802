"""Operations of a history: each invoke paired with its completion (pure, no I/O).

The checker and the metrics read the same pairs, so they never disagree on which
record of an operation counts.

Usage::

    calls, counts = pair(read_history(path), sale_id="moutai")
    unknown = [c for c in calls if c.outcome == "info"]   # no completion: unknown
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Literal

from .history import Op

Completion = Literal["ok", "fail", "info"]


@dataclass(frozen=True)
class Call:
    """One client operation: its invoke and its completion paired by ``op_id``.

    Either side may be missing: no completion means the outcome is unknown
    (``info``); no invoke is a harness glitch we tolerate and count.
    """

    invoke: Op | None
    done: Op | None

    @property
    def first(self) -> Op:
        op = self.invoke or self.done
        assert op is not None
        return op

    @property
    def op_id(self) -> str:
        return self.first.op_id

    @property
    def op(self) -> str:
        return self.first.op

    @property
    def user_id(self) -> str:
        return self.first.user_id

    @property
    def qty(self) -> int:
        # The quantity asked for; a completion alone is all we have for an orphan.
        return self.first.qty

    @property
    def key(self) -> str | None:
        return self.first.key

    @property
    def outcome(self) -> Completion:
        return "info" if self.done is None else self.done.type  # type: ignore[return-value]

    @property
    def order_id(self) -> str | None:
        # Pay and cancel know the order at invoke; an order learns it from its response.
        if self.invoke is not None and self.invoke.order_id:
            return self.invoke.order_id
        return self.done.order_id if self.done is not None else None

    @property
    def time(self) -> float:
        return self.first.time

    @property
    def done_time(self) -> float | None:
        return self.done.time if self.done is not None else None


_TYPE_RANK = {"invoke": 0, "ok": 1, "fail": 1, "info": 1}


def pair(ops: Iterable[Op], sale_id: str | None = None) -> tuple[tuple[Call, ...], dict[str, int]]:
    """Pair invokes with completions by op_id, in time order; returns the calls and bookkeeping counts.

    Only records of ``sale_id`` are paired (all when None). Of two records of one side of
    an op, the first wins; the later one is counted (``duplicate_records``), never trusted.
    """
    # A total order on records (repr breaks exact ties) so input order never matters.
    records = sorted(ops, key=lambda o: (o.time, _TYPE_RANK.get(o.type, 2), o.op_id, repr(o)))
    invokes: dict[str, Op] = {}
    dones: dict[str, Op] = {}
    counts = Counter(records=len(records), other_sale_records=0, duplicate_records=0)
    for op in records:
        if sale_id is not None and op.sale_id != sale_id:
            counts["other_sale_records"] += 1
            continue
        side = invokes if op.type == "invoke" else dones
        if op.op_id in side:
            # The first record wins; later ones are counted, not silently trusted.
            counts["duplicate_records"] += 1
            continue
        side[op.op_id] = op
    ids = sorted(set(invokes) | set(dones), key=lambda i: ((invokes.get(i) or dones[i]).time, i))
    calls = tuple(Call(invokes.get(i), dones.get(i)) for i in ids)
    counts["unmatched_completions"] = sum(1 for c in calls if c.invoke is None)
    counts["unfinished_ops"] = sum(1 for c in calls if c.done is None)
    return calls, dict(counts)
