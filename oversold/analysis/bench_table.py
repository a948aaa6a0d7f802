"""The strategy benchmark's table: columns, per-strategy median and spread, as text, CSV and Markdown. Pure.

``oversold.orchestrate.bench`` runs the benchmark and fills a ``Bench``; this
module summarises it (``summarize``) and formats it. Columns (``COLUMNS``):
throughput (completed operations per second of the run), p50 / p99 latency of
order and pay (ms), oversold units, refunds (entries in the audit's ``refunds``
list), leaked units (still held after settling), legit fill rate (share of
stock sold to buyers), peak share of stock held by bots, time to sell out (s
from the first request until nothing was available or held; "never" when it
did not).

Usage::

    print(format_table(bench.summaries))
    Path("bench.csv").write_text(to_csv(bench.summaries))
"""

from __future__ import annotations

import csv
import io
import os
import platform
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence


@dataclass(frozen=True)
class Column:
    """One measured column of the table: where its value comes from, how it is shown."""

    key: str
    label: str
    unit: str
    digits: int = 0  # decimals shown
    better: str = "lower"  # "lower" | "higher": which way the chart's reader should look


COLUMNS: tuple[Column, ...] = (
    Column("throughput", "throughput", "ops/s", 0, "higher"),
    Column("order_p50", "order p50", "ms", 1),
    Column("order_p99", "order p99", "ms", 1),
    Column("pay_p50", "pay p50", "ms", 1),
    Column("pay_p99", "pay p99", "ms", 1),
    Column("oversold_units", "oversold", "units"),
    Column("refunds", "refunds", "count"),
    Column("leaked_units", "leaked", "units"),
    Column("fill_rate_legit", "legit fill", "share", 3, "higher"),
    Column("bot_hold_share_peak", "bot hold peak", "share", 3),
    Column("sold_out_s", "sold out", "s", 1),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)

Value = float | None


@dataclass(frozen=True)
class RunRow:
    """One run of one strategy: its verdict, exit status and the value of each column."""

    strategy: str
    repeat: int
    verdict: str
    exit_status: int
    values: dict[str, Value]
    run_dir: str
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "repeat": self.repeat, "verdict": self.verdict,
                "exit_status": self.exit_status, "elapsed_s": round(self.elapsed_s, 3), "run_dir": self.run_dir,
                "values": {k: _round(v) for k, v in self.values.items()}}


@dataclass(frozen=True)
class Spread:
    """Median and range of one column over the repeats (``None`` when no run measured it)."""

    median: Value
    min: Value
    max: Value
    n: int  # runs that measured it
    runs: int  # runs in all

    def to_dict(self) -> dict[str, Any]:
        return {"median": _round(self.median), "min": _round(self.min), "max": _round(self.max), "n": self.n}


@dataclass(frozen=True)
class Summary:
    """One strategy over its repeats: verdict counts and a ``Spread`` per column."""

    strategy: str
    runs: int
    verdicts: dict[str, int]
    stats: dict[str, Spread]

    @property
    def verdict(self) -> str:
        """``pass`` / ``fail`` / ``inconclusive`` when all repeats agree, else e.g. ``fail 2/3``."""
        if len(self.verdicts) == 1:
            return next(iter(self.verdicts))
        worst = "fail" if "fail" in self.verdicts else "inconclusive"
        return f"{worst} {self.verdicts[worst]}/{self.runs}"

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "runs": self.runs, "verdict": self.verdict,
                "verdicts": dict(self.verdicts), "stats": {k: s.to_dict() for k, s in self.stats.items()}}


@dataclass
class Bench:
    """A benchmark: what ran and what came out (``summaries`` in the order the strategies were given)."""

    scenario_name: str
    scenario_path: str
    seed: int
    strategies: tuple[str, ...]
    repeat: int
    rows: list[RunRow] = field(default_factory=list)
    command: str = ""
    started: float = field(default_factory=time.time)
    elapsed_s: float = 0.0

    @property
    def summaries(self) -> list[Summary]:
        return summarize(self.rows, self.strategies)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": {"name": self.scenario_name, "path": self.scenario_path, "seed": self.seed},
            "strategies": list(self.strategies), "repeat": self.repeat, "command": self.command,
            "machine": machine(), "started": round(self.started, 3), "elapsed_s": round(self.elapsed_s, 3),
            "columns": [{"key": c.key, "label": c.label, "unit": c.unit, "better": c.better} for c in COLUMNS],
            "summary": [s.to_dict() for s in self.summaries],
            "runs": [r.to_dict() for r in self.rows],
        }


def machine() -> dict[str, Any]:
    """Enough about this machine to read the numbers against."""
    return {"cpus": os.cpu_count(), "system": platform.system(), "machine": platform.machine(),
            "python": platform.python_version()}


def _round(v: Value) -> Value:
    return round(v, 6) if isinstance(v, float) else v


def spread(values: Sequence[Value]) -> Spread:
    """Median, min and max of the measured values (``None``s are runs that did not measure it)."""
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return Spread(None, None, None, 0, len(values))
    return Spread(statistics.median(xs), xs[0], xs[-1], len(xs), len(values))


def summarize(rows: Sequence[RunRow], order: Sequence[str] = ()) -> list[Summary]:
    """One ``Summary`` per strategy, in ``order`` (then any other strategy, by first appearance)."""
    strategies = list(dict.fromkeys([*order, *(r.strategy for r in rows)]))
    out = []
    for s in strategies:
        mine = [r for r in rows if r.strategy == s]
        if not mine:
            continue
        out.append(Summary(
            strategy=s, runs=len(mine), verdicts=dict(Counter(r.verdict for r in mine)),
            stats={c.key: spread([r.values.get(c.key) for r in mine]) for c in COLUMNS},
        ))
    return out


def format_cell(col: Column, sp: Spread) -> str:
    """``median`` with ``(min–max)`` when repeats differ; ``—`` unmeasured; ``never`` for no sell-out."""
    if sp.median is None:
        return "never" if col.key == "sold_out_s" and sp.runs else "—"

    def f(v: float) -> str:
        return f"{v:,.{col.digits}f}"

    text = f(sp.median)
    if sp.n > 1 and f(sp.min) != f(sp.max):  # type: ignore[arg-type]
        text += f" ({f(sp.min)}–{f(sp.max)})"  # type: ignore[arg-type]
    if col.key == "sold_out_s" and sp.n < sp.runs:
        text += f" [{sp.runs - sp.n} never]"
    return text


def table_rows(summaries: Sequence[Summary]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the table (strategy, verdict, then every column)."""
    header = ["strategy", "verdict", *(f"{c.label} ({c.unit})" for c in COLUMNS)]
    cells = [[s.strategy, s.verdict, *(format_cell(c, s.stats[c.key]) for c in COLUMNS)] for s in summaries]
    return header, cells


def format_table(summaries: Sequence[Summary]) -> str:
    """The table for a terminal: aligned columns, numbers right-aligned."""
    header, cells = table_rows(summaries)
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in cells)])


def format_markdown(summaries: Sequence[Summary]) -> str:
    """The table as GitHub Markdown (what the README shows)."""
    header, cells = table_rows(summaries)
    rule = ["---", "---", *("---:" for _ in COLUMNS)]
    return "\n".join("| " + " | ".join(r) + " |" for r in [header, rule, *cells])


def to_csv(summaries: Sequence[Summary]) -> str:
    """One row per strategy: runs, verdict, then ``<column>_median``, ``_min``, ``_max`` (empty = not measured)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["strategy", "runs", "verdict",
                *(f"{c.key}_{part}" for c in COLUMNS for part in ("median", "min", "max"))])
    for s in summaries:
        row: list[Any] = [s.strategy, s.runs, s.verdict]
        for c in COLUMNS:
            sp = s.stats[c.key]
            row += ["" if v is None else _round(v) for v in (sp.median, sp.min, sp.max)]
        w.writerow(row)
    return buf.getvalue()
