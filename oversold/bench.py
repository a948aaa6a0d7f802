"""The strategy benchmark: one scenario against each deduction strategy, K times, one table.

Every run is a full ``run_scenario`` with only ``sale.strategy`` changed — the
same seed, the same swarm, the same fault schedule (it is planned from the
seed) — so the strategies differ in nothing else. Each run's numbers come from
its own checked results (``oversold.metrics``, the checker's totals and the
audit); a strategy that oversells is a verdict in the table, not an error.
Repeats give the median and the spread (min–max) of each column.

Columns (``COLUMNS``): throughput (completed operations per second of the
run), p50 / p99 latency of order and pay (ms), oversold units, refunds (entries
in the audit's ``refunds`` list), leaked units (still held after settling),
legit fill rate (share of stock sold to buyers), peak share of stock held by
bots, time to sell out (s from the first request until nothing was available
or held; "never" when it did not).

Output directory: ``bench.csv`` (one row per strategy: median, min, max of
each column), ``bench.json`` (the same plus every run), ``bench.md`` (the
table as Markdown), ``bench.html`` (table and charts, self-contained) and
``runs/<strategy>-<k>/`` (each run's own directory).

Usage::

    scenario = load_scenario(Path("scenarios/flash_sale.yaml"))
    bench = run_bench(scenario, ["pre_deduct", "naive"], repeat=3, out=Path("runs/bench"))
    print(format_table(bench.summaries))
    write_outputs(bench, Path("runs/bench"))
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .errors import BadInput

if TYPE_CHECKING:
    from .progress import RunObserver
    from .run import RunResult
    from .scenario import Scenario

Progress = Callable[[str], None]


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


# --------------------------------------------------------------------------- pure parts


def validate_strategies(names: Sequence[str], known: Sequence[str]) -> tuple[str, ...]:
    """The strategies to run, in order; ``BadInput`` listing every problem (unknown, repeated, none)."""
    problems = []
    cleaned = tuple(n.strip() for n in names if n.strip())
    if not cleaned:
        problems.append("--strategies: name at least one strategy")
    for n in cleaned:
        if n not in known:
            problems.append(f"--strategies: {n!r} is not a strategy of the reference backend "
                            f"(known: {', '.join(known)})")
    repeated = sorted({n for n in cleaned if cleaned.count(n) > 1})
    if repeated:
        problems.append(f"--strategies: {', '.join(repeated)} named more than once")
    if problems:
        raise BadInput("; ".join(problems))
    return cleaned


def values_of(result: "RunResult") -> dict[str, Value]:
    """The column values of one run (``None`` where the run did not measure it)."""
    m = result.evaluation.metrics if result.evaluation is not None else None

    def stat(name: str, s: str) -> Value:
        if m is None:
            return None
        v = m.stat(name, s)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    totals = result.verdict.totals
    oversold = totals.get("oversold_units")
    audit = result.final.audit if isinstance(result.final.audit, dict) else {}
    refunds = audit.get("refunds")
    return {
        "throughput": stat("throughput", "value"),
        "order_p50": stat("latency.order", "p(50)"),
        "order_p99": stat("latency.order", "p(99)"),
        "pay_p50": stat("latency.pay", "p(50)"),
        "pay_p99": stat("latency.pay", "p(99)"),
        "oversold_units": float(oversold) if isinstance(oversold, int) else stat("oversold_units", "value"),
        "refunds": float(len(refunds)) if isinstance(refunds, list) else None,
        "leaked_units": stat("leaked_units", "value"),
        "fill_rate_legit": stat("fill_rate.legit", "rate"),
        "bot_hold_share_peak": stat("bot_hold_share.peak", "value"),
        "sold_out_s": stat("sold_out_s", "value"),
    }


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


# --------------------------------------------------------------------------- the executor


def run_bench(
    scenario: "Scenario",
    strategies: Sequence[str],
    *,
    repeat: int,
    out: Path,
    scenario_path: str = "",
    progress: Progress = lambda _m: None,
    observer: "RunObserver | None" = None,
    command: str = "",
) -> Bench:
    """Run the scenario ``repeat`` times per strategy, one strategy after the other; returns the ``Bench``.

    Raises ``BadInput`` for an unknown strategy or a bad ``repeat`` before anything
    starts, and lets ``StandUpError`` / ``HarnessError`` through: a benchmark
    whose system could not be stood up has no table to give.
    """
    from .cli import exit_status
    from .run import run_scenario
    from .scenario import STRATEGIES

    names = validate_strategies(strategies, STRATEGIES)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= 100:
        raise BadInput(f"--repeat: must be an integer from 1 to 100, got {repeat!r}")
    out = out.resolve()
    bench = Bench(scenario.name, scenario_path, scenario.seed, names, repeat, command=command)
    began = time.monotonic()
    total = len(names) * repeat
    for i, strategy in enumerate(names):
        for k in range(1, repeat + 1):
            n = i * repeat + k
            progress(f"bench {n}/{total}: {strategy} run {k} of {repeat}")
            run_dir = out / "runs" / f"{strategy}-{k}"
            result = run_scenario(scenario.with_overrides(strategy=strategy), run_dir, observer=observer)
            thresholds = result.evaluation.thresholds if result.evaluation is not None else ()
            row = RunRow(strategy, k, result.verdict.verdict, exit_status(result.verdict.verdict, thresholds),
                         values_of(result), str(run_dir), result.elapsed_s)
            bench.rows.append(row)
            progress(_run_line(row))
    bench.elapsed_s = time.monotonic() - began
    return bench


def _run_line(row: RunRow) -> str:
    v = row.values

    def g(key: str, fmt: str) -> str:
        return "—" if v.get(key) is None else format(v[key], fmt)

    return (f"  {row.strategy} #{row.repeat}: {row.verdict.upper()} (exit {row.exit_status}) "
            f"oversold {g('oversold_units', '.0f')}, {g('throughput', ',.0f')} ops/s, "
            f"order p99 {g('order_p99', '.1f')} ms, "
            f"sold out {'never' if v.get('sold_out_s') is None else format(v['sold_out_s'], '.1f') + ' s'} "
            f"[{row.elapsed_s:.1f} s]")


def write_outputs(bench: Bench, out: Path) -> dict[str, Path]:
    """Write ``bench.csv``, ``bench.json``, ``bench.md`` and ``bench.html`` into ``out``."""
    from .bench_report import render_bench

    out.mkdir(parents=True, exist_ok=True)
    summaries = bench.summaries
    paths = {name: out / f"bench.{name}" for name in ("csv", "json", "md", "html")}
    paths["csv"].write_text(to_csv(summaries), encoding="utf-8")
    paths["json"].write_text(json.dumps(bench.to_dict(), indent=2), encoding="utf-8")
    paths["md"].write_text(format_markdown(summaries) + "\n", encoding="utf-8")
    paths["html"].write_text(render_bench(bench), encoding="utf-8")
    return paths
