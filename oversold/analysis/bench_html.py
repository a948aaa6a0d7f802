"""``bench.html``: the strategy benchmark as one self-contained page (no script, no external URL).

Top to bottom: what ran (command, scenario, seed, repeats, machine); the table
(median and min–max of each column, the verdict of each strategy coloured);
one inline-SVG chart per column — a bar to the median of each strategy and a
whisker over its min–max, coloured by verdict — and what each column means.

Usage::

    (out / "bench.html").write_text(render_bench(bench), encoding="utf-8")
"""

from __future__ import annotations

import time
from html import escape
from typing import Any, Sequence

from .bench_table import COLUMNS, Bench, Column, Summary, format_cell, machine, table_rows

VERDICT_COLOUR = {"pass": "#2b8a3e", "fail": "#c92a2a", "inconclusive": "#e67700"}
MEANING = {
    "throughput": "completed operations (order, pay, cancel) per second over the run",
    "order_p50": "median latency of completed order requests",
    "order_p99": "99th percentile latency of completed order requests",
    "pay_p50": "median latency of completed pay requests",
    "pay_p99": "99th percentile latency of completed pay requests",
    "oversold_units": "units sold beyond stock (the checker's count; anything but 0 is a failed sale)",
    "refunds": "refunds in the backend's audit (payments that found no stock, refunded and compensated)",
    "leaked_units": "units still held once the sale went quiet",
    "fill_rate_legit": "share of the stock that went to legit buyers",
    "bot_hold_share_peak": "highest share of the stock held by bots (hoarders) at any moment",
    "sold_out_s": "seconds from the first request until nothing was available or held",
}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#212529;background:#f8f9fa}
main{max-width:1180px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:21px;margin:8px 0} h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #dee2e6;padding-bottom:4px}
table{border-collapse:collapse;background:#fff;margin:4px 0 10px;width:100%}
th,td{border:1px solid #dee2e6;padding:4px 7px;text-align:left;vertical-align:top;white-space:nowrap}
th{background:#f1f3f5;font-weight:600;white-space:normal} .scroll{overflow-x:auto} td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;border-radius:4px;padding:1px 8px;color:#fff;font-weight:700;font-size:12px}
code{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px;background:#f1f3f5;padding:1px 4px}
.grid{display:grid;grid-template-columns:repeat(2,1fr);gap:12px}
.card{background:#fff;border:1px solid #dee2e6;border-radius:8px;padding:8px 10px}
.card h3{font-size:14px;margin:2px 0 4px} .muted{color:#868e96} svg{display:block}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _colour(verdict: str) -> str:
    return VERDICT_COLOUR.get(verdict.split(" ")[0], "#495057")


def bar_chart(col: Column, summaries: Sequence[Summary], *, width: int = 540) -> str:
    """Median bars with min–max whiskers, one row per strategy (inline SVG)."""
    row_h, left, right, top = 26, 150, 90, 6
    height = top + row_h * len(summaries) + 6
    top_value = max((s.stats[col.key].max or 0.0 for s in summaries), default=0.0) or 1.0
    plot_w = width - left - right

    def x(v: float) -> float:
        return left + plot_w * max(0.0, v) / top_value

    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="{_e(col.label)} by strategy">']
    for i, s in enumerate(summaries):
        sp = s.stats[col.key]
        y = top + i * row_h
        parts.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end" font-size="12">{_e(s.strategy)}</text>')
        if sp.median is None:
            parts.append(f'<text x="{left + 4}" y="{y + 17}" font-size="12" fill="#868e96">'
                         f'{_e(format_cell(col, sp))}</text>')
            continue
        colour = _colour(s.verdict)
        parts.append(f'<rect x="{left}" y="{y + 5}" width="{max(1.0, x(sp.median) - left):.1f}" height="14" '
                     f'fill="{colour}" fill-opacity="0.8"><title>{_e(s.strategy)}: {_e(format_cell(col, sp))}'
                     f'</title></rect>')
        if sp.n > 1 and sp.min is not None and sp.max is not None and sp.max > sp.min:
            x0, x1, ym = x(sp.min), x(sp.max), y + 12
            parts.append(f'<path d="M{x0:.1f},{ym}H{x1:.1f}M{x0:.1f},{ym - 5}V{ym + 5}M{x1:.1f},{ym - 5}V{ym + 5}" '
                         f'stroke="#212529" stroke-width="1.4" fill="none"/>')
        label_x = max(x(sp.max or sp.median), x(sp.median)) + 6
        parts.append(f'<text x="{label_x:.1f}" y="{y + 17}" font-size="12">'
                     f'{_e(f"{sp.median:,.{col.digits}f}")}</text>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - 4}" stroke="#adb5bd"/>')
    parts.append("</svg>")
    return "".join(parts)


def _table(summaries: Sequence[Summary]) -> str:
    header, cells = table_rows(summaries)
    out = ['<div class="scroll"><table><thead><tr>', *(f"<th>{_e(h)}</th>" for h in header), "</tr></thead><tbody>"]
    for s, row in zip(summaries, cells):
        out.append(f"<tr><td><b>{_e(row[0])}</b></td>"
                   f'<td><span class="badge" style="background:{_colour(s.verdict)}">{_e(row[1])}</span></td>')
        out.extend(f'<td class="num">{_e(v)}</td>' for v in row[2:])
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def render_bench(bench: "Bench") -> str:
    """The whole page."""
    summaries = bench.summaries
    m = machine()
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(bench.started))
    charts = "".join(
        f'<div class="card"><h3>{_e(c.label)} <span class="muted">({_e(c.unit)}, '
        f'{"higher" if c.better == "higher" else "lower"} is better)</span></h3>{bar_chart(c, summaries)}</div>'
        for c in COLUMNS)
    meanings = "".join(f"<tr><td>{_e(c.label)}</td><td>{_e(c.unit)}</td><td>{_e(MEANING.get(c.key, ''))}</td></tr>"
                       for c in COLUMNS)
    return "".join([
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>oversold bench: {_e(bench.scenario_name)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>Strategy benchmark: {_e(bench.scenario_name)}</h1>",
        f"<p>{_e(len(bench.strategies))} strategies × {_e(bench.repeat)} run(s), seed {_e(bench.seed)}, "
        f"the same scenario and fault schedule for each; {_e(when)}, {_e(round(bench.elapsed_s))} s in all. "
        f"Machine: {_e(m['cpus'])} CPUs, {_e(m['system'])} {_e(m['machine'])}, Python {_e(m['python'])}.</p>",
        f"<p><code>{_e(bench.command)}</code></p>" if bench.command else "",
        "<p class=\"muted\">Cells: median over the runs, (min–max) when they differ. A red verdict is a strategy "
        "that broke an invariant — for <code>naive</code> that is the point.</p>",
        "<h2>Table</h2>", _table(summaries),
        "<h2>Charts</h2><p class=\"muted\">Bar: median; whisker: min–max over the runs; colour: verdict.</p>",
        f'<div class="grid">{charts}</div>',
        "<h2>Columns</h2><table><thead><tr><th>column</th><th>unit</th><th>what it is</th></tr></thead>",
        f"<tbody>{meanings}</tbody></table>",
        "</main></body></html>\n",
    ])
