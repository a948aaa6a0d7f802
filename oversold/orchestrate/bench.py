"""The strategy benchmark: one scenario against each deduction strategy, K times, one table.

Every run is a full ``run_scenario`` with only ``sale.strategy`` changed — the
same seed, the same swarm, the same fault schedule (it is planned from the
seed) — so the strategies differ in nothing else. Each run's numbers come from
its own checked results (``oversold.analysis.metrics``, the checker's totals and the
audit); a strategy that oversells is a verdict in the table, not an error.
Repeats give the median and the spread (min–max) of each column.

The table, its columns and its formats are ``oversold.analysis.bench_table``.

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

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from oversold.analysis.bench_html import render_bench
from oversold.analysis.bench_table import Bench, RunRow, Value, format_markdown, to_csv
from oversold.errors import BadInput
from oversold.model.scenario import STRATEGIES
from oversold.model.state import parse_state

from .run import run_scenario

if TYPE_CHECKING:
    from oversold.model.scenario import Scenario

    from .progress import RunObserver
    from .run import RunResult

Progress = Callable[[str], None]


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
    m = result.evaluation.metrics

    def stat(name: str, s: str) -> Value:
        v = m.stat(name, s)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    audit = parse_state(result.final).audit
    refunds = audit.refunds if audit is not None else None
    return {
        "throughput": stat("throughput", "value"),
        "order_p50": stat("latency.order", "p(50)"),
        "order_p99": stat("latency.order", "p(99)"),
        "pay_p50": stat("latency.pay", "p(50)"),
        "pay_p99": stat("latency.pay", "p(99)"),
        "oversold_units": float(result.verdict.totals.oversold_units),
        "refunds": float(len(refunds)) if refunds is not None else None,
        "leaked_units": stat("leaked_units", "value"),
        "fill_rate_legit": stat("fill_rate.legit", "rate"),
        "bot_hold_share_peak": stat("bot_hold_share.peak", "value"),
        "sold_out_s": stat("sold_out_s", "value"),
    }



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
            row = RunRow(strategy, k, result.verdict.overall, result.exit_code,
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
    out.mkdir(parents=True, exist_ok=True)
    summaries = bench.summaries
    paths = {name: out / f"bench.{name}" for name in ("csv", "json", "md", "html")}
    paths["csv"].write_text(to_csv(summaries), encoding="utf-8")
    paths["json"].write_text(json.dumps(bench.to_dict(), indent=2), encoding="utf-8")
    paths["md"].write_text(format_markdown(summaries) + "\n", encoding="utf-8")
    paths["html"].write_text(render_bench(bench), encoding="utf-8")
    return paths
