"""``report.html``: one self-contained page a person opens offline after a run.

No external URL, no script: inline CSS and inline SVG charts drawn here. Every
string from the run (user ids, order ids, messages, error codes) is HTML-escaped.

The page, top to bottom: the verdict (big, coloured); what ran; totals; the
thresholds table; the counter timeline (available / held / sold, and refunded
when the samples have it) with fault periods shaded; requests per second and
latency quantiles per operation over time (1-s buckets of the history); who got
the stock (legit buyers against each bot kind); every invariant with every
counterexample the checker found and the history records it names (the first
``OPEN_EXAMPLES`` open, the rest in a collapsed ``<details>``, no script); all
metrics.

Usage::

    html_text = render_report(scenario, verdict, evaluation, ops, final,
                              timeline=samples, faults=faults, elapsed_s=12.5)
    (run_dir / "report.html").write_text(html_text, encoding="utf-8")
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime, timezone
from dataclasses import dataclass
from html import escape
from typing import Any, Iterable, Mapping, Sequence

from oversold.checker import Verdict
from oversold.model.history import FinalState, Op
from oversold.model.metric_spec import LATENCY_OPS, LEGIT_KINDS, METRICS
from oversold.model.scenario import Scenario
from oversold.model.state import parse_state
from oversold.model.timeline import FaultPeriod, TimelineSample

from .evaluation import Evaluation
from .metrics import quantile, units_sold_by_kind

VERDICT_COLOUR = {"pass": "#2b8a3e", "fail": "#c92a2a", "inconclusive": "#e67700"}
STATUS_COLOUR = {"pass": "#2b8a3e", "fail": "#c92a2a", "unknown": "#e67700", "not_applicable": "#868e96"}
SERIES_COLOUR = {"available": "#2b8a3e", "held": "#e67700", "sold": "#1c7ed6", "refunded": "#ae3ec9",
                 "stock": "#212529", "sold (audit)": "#c92a2a", "paid (acknowledged)": "#f783ac",
                 "order": "#1c7ed6", "pay": "#2b8a3e", "cancel": "#ae3ec9",
                 "p(50)": "#1c7ed6", "p(90)": "#e67700", "p(99)": "#c92a2a", "harness_rss_mib": "#495057"}
#: History records shown per counterexample; the rest are counted, and history.jsonl has them all.
MAX_RECORDS_PER_EXAMPLE = 24
#: Counterexamples of an invariant shown open; further ones are on the page too, in a collapsed <details>.
OPEN_EXAMPLES = 10
#: Counterexamples of an invariant on the page at most: a run of a million records may have tens of thousands,
#: and the page must stay small. The full list is always in results.json; the page says how many it left there.
MAX_EXAMPLES_ON_PAGE = 200

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#212529;background:#f8f9fa}
main{max-width:1140px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:20px;margin:8px 0} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dee2e6;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
.verdict{color:#fff;border-radius:10px;padding:18px 24px;margin:12px 0 8px}
.verdict .word{font-size:44px;font-weight:800;letter-spacing:.04em}
.verdict .sub{font-size:16px;opacity:.95}
.badge{display:inline-block;border-radius:4px;padding:1px 8px;color:#fff;font-weight:700;font-size:12px}
table{border-collapse:collapse;background:#fff;margin:4px 0 10px;width:100%}
th,td{border:1px solid #dee2e6;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f5;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
table.kv{width:auto} code,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px}
.card{background:#fff;border:1px solid #dee2e6;border-radius:8px;padding:10px 12px;margin:10px 0}
.legend span{display:inline-block;margin-right:16px} .legend i{display:inline-block;width:14px;height:4px;vertical-align:middle;margin-right:5px}
.muted{color:#868e96} svg{display:block;background:#fff}
.grid{display:grid;grid-template-columns:repeat(3,1fr);gap:10px}
.totals{display:grid;grid-template-columns:repeat(4,1fr);gap:0;background:#fff;border:1px solid #dee2e6;border-radius:8px}
.totals div{display:flex;justify-content:space-between;padding:4px 10px;border-bottom:1px solid #f1f3f5}
.totals .k{color:#495057} .totals .v{font-weight:600;font-variant-numeric:tabular-nums}
details summary{cursor:pointer;font-weight:600}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if not math.isfinite(value):
            return _e(value)
        return f"{value:,.{digits}f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return _e(value)


# --------------------------------------------------------------------------- SVG charts


@dataclass(frozen=True)
class Series:
    """One line of a chart: a label, a colour and (x, y) points in data units; ``None`` is a gap."""

    label: str
    colour: str
    points: tuple[tuple[float, float] | None, ...]
    dash: str | None = None  # an SVG stroke-dasharray, so a line drawn over another still shows

    def segments(self) -> list[list[tuple[float, float]]]:
        out: list[list[tuple[float, float]]] = [[]]
        for p in self.points:
            if p is None:
                out.append([])
            else:
                out[-1].append(p)
        return [seg for seg in out if seg]


def _nice_step(span: float, ticks: int = 6) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def line_chart(
    series: Sequence[Series],
    *,
    x_max: float,
    y_label: str,
    shaded: Sequence[tuple[float, float, str]] = (),
    width: int = 1100,
    height: int = 260,
    css_class: str = "chart",
) -> str:
    """An inline SVG line chart (x: seconds from the start); ``shaded`` are (x0, x1, title) bands."""
    left, right, top, bottom = 64, 16, 12, 34
    pw, ph = width - left - right, height - top - bottom
    y_max = max((p[1] for s in series for p in s.points if p is not None), default=0.0)
    y_step = _nice_step(y_max or 1.0, 5)
    y_top = max(y_step, math.ceil((y_max or 1.0) / y_step) * y_step)
    x_top = x_max if x_max > 0 else 1.0
    x_step = _nice_step(x_top, 10)

    def px(x: float) -> float:
        return left + pw * min(max(x, 0.0), x_top) / x_top

    def py(y: float) -> float:
        return top + ph - ph * min(max(y, 0.0), y_top) / y_top

    out = [f'<svg class="{_e(css_class)}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'role="img" aria-label="{_e(y_label)} over time">']
    for n, (x0, x1, title) in enumerate(shaded, 1):
        a, b = px(x0), px(x1)
        out.append(f'<rect class="fault" x="{a:.1f}" y="{top}" width="{max(b - a, 2):.1f}" height="{ph}" '
                   f'fill="#fa5252" fill-opacity="0.16"><title>{_e(title)}</title></rect>'
                   # the band's number in the fault table below the stock chart
                   f'<text class="fault-label" x="{a + 3:.1f}" y="{top + 12}" font-size="11" fill="#c92a2a">'
                   f'{n}</text>')
    tick = 0.0
    while tick <= y_top + 1e-9:
        y = py(tick)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#e9ecef"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#495057">'
                   f'{_num(round(tick, 6))}</text>')
        tick += y_step
    tick = 0.0
    while tick <= x_top + 1e-9:
        x = px(tick)
        out.append(f'<line x1="{x:.1f}" y1="{top + ph}" x2="{x:.1f}" y2="{top + ph + 4}" stroke="#868e96"/>'
                   f'<text x="{x:.1f}" y="{top + ph + 17}" text-anchor="middle" font-size="11" fill="#495057">'
                   f'{_num(round(tick, 6))}s</text>')
        tick += x_step
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#adb5bd"/>')
    out.append(f'<text x="14" y="{top + ph / 2:.1f}" font-size="11" fill="#495057" text-anchor="middle" '
               f'transform="rotate(-90 14 {top + ph / 2:.1f})">{_e(y_label)}</text>')
    for s in series:
        for seg in s.segments():
            if len(seg) == 1:  # a lone point between two gaps would draw nothing as a polyline
                seg = [seg[0], seg[0]]
            pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in seg)
            dash = f' stroke-dasharray="{_e(s.dash)}"' if s.dash else ""
            out.append(f'<polyline class="series" data-series="{_e(s.label)}" fill="none" stroke="{_e(s.colour)}" '
                       f'stroke-width="2" stroke-linejoin="round" stroke-linecap="round"{dash} points="{pts}">'
                       f'<title>{_e(s.label)}</title></polyline>')
    out.append("</svg>")
    return "".join(out)


def _legend(series: Sequence[Series], shaded: bool) -> str:
    items = [f'<span><i style="background:{_e(s.colour)}"></i>{_e(s.label)}{" (dotted)" if s.dash == "2 4" else " (dashed)" if s.dash else ""}</span>'
             for s in series if s.points]
    if shaded:
        items.append('<span><i style="background:#fa5252;opacity:.35;height:10px"></i>fault</span>')
    return f'<div class="legend">{"".join(items)}</div>'


def bar_chart(rows: Sequence[tuple[str, float, str]], *, total: float | None = None, width: int = 700) -> str:
    """Horizontal bars (label, value, colour) as inline SVG; ``total`` scales the bars (e.g. stock)."""
    bar_h, gap, left, right = 22, 8, 170, 190
    height = max(1, len(rows)) * (bar_h + gap) + gap
    scale_to = max([total or 0.0] + [v for _, v, _ in rows]) or 1.0
    out = [f'<svg class="bars" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="units by kind">']
    for i, (label, value, colour) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        w = (width - left - right) * value / scale_to
        share = f" ({value / total:.1%} of stock)" if total else ""
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" font-size="12">{_e(label)}</text>'
                   f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{_e(colour)}"/>'
                   f'<text x="{left + w + 6:.1f}" y="{y + 15}" font-size="12">{_num(value)}{_e(share)}</text>')
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------- data for the charts


def _per_second(ops: Sequence[Op], t0: float) -> tuple[dict[str, dict[int, int]], dict[str, dict[int, list[float]]]]:
    """Completions per 1-s bucket and latencies per bucket, per operation (bucket = completion time)."""
    counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    lats: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for o in ops:
        if o.type == "invoke" or o.op not in LATENCY_OPS:
            continue
        b = int(math.floor(o.time - t0))
        counts[o.op][b] += 1
        if o.latency_ms is not None:
            lats[o.op][b].append(float(o.latency_ms))
    return counts, lats


def _shading(faults: Sequence[FaultPeriod], t0: float, t_end: float) -> list[tuple[float, float, str]]:
    bands = []
    for f in faults:
        a, b = f.span(t_end)
        bands.append((a - t0, b - t0, f"{f.title}: {a - t0:.1f}s to {b - t0:.1f}s"))
    return bands


# --------------------------------------------------------------------------- the page


def render_report(
    scenario: Scenario,
    verdict: Verdict,
    evaluation: Evaluation | None,
    ops: Sequence[Op],
    final: FinalState,
    *,
    timeline: Sequence[TimelineSample] = (),
    faults: Sequence[FaultPeriod] = (),
    elapsed_s: float | None = None,
) -> str:
    """The whole page as one HTML string."""
    sale_ops = [o for o in ops if o.sale_id == final.sale_id]
    raw = sorted(timeline, key=lambda s: s.t)
    samples = [s for s in raw if s.error is None]
    times = [o.time for o in sale_ops] + [s.t for s in samples]
    t0 = min(times) if times else 0.0
    t_end = max(times) if times else 0.0
    span = max(t_end - t0, 1.0)
    thresholds = evaluation.thresholds if evaluation else ()
    shaded = _shading(faults, t0, t_end)

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>oversold: {_e(verdict.overall.upper())} — {_e(scenario.name)} ({_e(scenario.backend_label)})</title>",
        f"<style>{CSS}</style></head><body><main>",
        _verdict_banner(verdict, thresholds),
        _what_ran(scenario, final, elapsed_s),
        _totals(verdict),
        _thresholds_table(thresholds),
        _timeline(raw, t0, span, shaded, sale_ops, final),
        _fault_table(faults, t0, t_end),
        _harness_memory(raw, t0, span, shaded),
        _throughput_and_latency(sale_ops, t0, span, shaded),
        _who_got_it(sale_ops, final),
        _invariants(verdict, sale_ops, t0),
        _metrics_table(evaluation),
        '<p class="muted">Generated by oversold from the run directory (history.jsonl, final_state.json, '
        "timeline.jsonl, faults.jsonl). Times are seconds from the first record.</p>",
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _verdict_banner(verdict: Verdict, thresholds: Sequence[Any]) -> str:
    failed = [t for t in thresholds if not t.passed]
    colour = VERDICT_COLOUR.get(verdict.overall, "#495057")
    if verdict.overall == "pass" and failed:
        colour = "#d9480f"
    counts = defaultdict(int)
    for inv in verdict.invariants:
        counts[inv.status] += 1
    sub = (f"{counts['pass']} invariants hold, {counts['fail']} violated, {counts['unknown']} undecided"
           + (f", {counts['not_applicable']} not applicable to this backend" if counts["not_applicable"] else "")
           + f" · thresholds: {len(thresholds) - len(failed)} of {len(thresholds)} passed")
    extra = f'<div class="sub"><b>THRESHOLDS FAILED</b>: {_e(", ".join(f"{t.metric} {t.expression}" for t in failed))}</div>' if failed else ""
    t = verdict.totals
    return (f'<section class="verdict" id="verdict" style="background:{colour}">'
            f'<div class="word">{_e(verdict.overall.upper())}</div>'
            f'<div class="sub">{_e(sub)}</div>{extra}'
            f'<div class="sub">stock {_num(t.stock)} · sold {_num(t.sold)} · '
            f'oversold units {_num(t.oversold_units)}</div></section>')


def _what_ran(scenario: Scenario, final: FinalState, elapsed_s: float | None) -> str:
    s = scenario
    mix = ", ".join(f"{k} {v}" for k, v in s.swarm.mix.items())
    where = (f"backend nodes {_num(s.backend.nodes)}" if s.backend.url is None
             else f"backend <code>{_e(s.backend.url)}</code>")
    return (f"<h1>{_e(s.name)} — {_e(s.backend_label)} (seed {_e(s.seed)})</h1>"
            f'<p class="muted">sale <code>{_e(final.sale_id)}</code>, stock {_num(final.stock)}, hold TTL '
            f"{_num(final.hold_ttl_ms)} ms · {_num(s.swarm.users)} users ({_e(mix)}) for up to "
            f"{_num(float(s.swarm.duration_s))} s · {where}"
            + (f" · run took {_num(elapsed_s)} s" if elapsed_s is not None else "") + "</p>")


def _totals(verdict: Verdict) -> str:
    cells = "".join(f'<div><span class="k">{_e(k)}</span><span class="v">{_num(v)}</span></div>'
                    for k, v in verdict.totals.to_dict().items())
    return f'<h2>Totals</h2><div class="totals" id="totals">{cells}</div>'


def _thresholds_table(thresholds: Sequence[Any]) -> str:
    if not thresholds:
        return '<h2>Thresholds</h2><p class="muted">The scenario sets no thresholds.</p>'
    rows = []
    for t in thresholds:
        badge = _badge("pass" if t.passed else "fail")
        rows.append(f"<tr><td>{badge}</td><td><code>{_e(t.metric)}</code></td><td><code>{_e(t.expression)}</code>"
                    f'</td><td class="num">{_num(t.observed, 4)}</td><td>{_e(t.message)}</td></tr>')
    return ('<h2>Thresholds</h2><table id="thresholds"><tr><th></th><th>metric</th><th>threshold</th>'
            f'<th>observed</th><th>message</th></tr>{"".join(rows)}</table>')


def _badge(status: str) -> str:
    colour = STATUS_COLOUR.get(status, "#495057")
    return f'<span class="badge" style="background:{colour}">{_e(status.upper())}</span>'


def _audited_sales(final: FinalState) -> list[tuple[float, int]]:
    """(paid instant in seconds, units) of every sold order the audit lists with its ``paid_ms``."""
    audit = final.audit if isinstance(final.audit, dict) else {}
    out = []
    for row in audit.get("sold") or ():
        if isinstance(row, dict) and isinstance(row.get("paid_ms"), (int, float)) and isinstance(row.get("qty"), int):
            out.append((row["paid_ms"] / 1000.0, row["qty"]))
    return sorted(out)


def _acknowledged_pays(ops: Sequence[Op]) -> list[tuple[float, int]]:
    """(instant, units) of each order's first acknowledged pay, from the clients' history."""
    first: dict[str, tuple[float, int]] = {}
    for o in ops:
        if o.op == "pay" and o.type == "ok" and o.order_id and o.order_id not in first:
            first[o.order_id] = (o.time, o.qty)
    return sorted(first.values())


#: At most this many steps a cumulative line draws; more events are summed per time bin (a million-record
#: run would otherwise put two points per sold order into the page: megabytes for one line)
MAX_STEPS = 400


def _cumulative(events: Sequence[tuple[float, int]], t0: float) -> tuple[tuple[float, float], ...]:
    """A step line of the running total of ``events`` (seconds from ``t0``): one step per event, or per
    time bin when there are more than ``MAX_STEPS`` (the total at each bin's end is exact)."""
    total, pts = 0, [(0.0, 0.0)]
    if len(events) > MAX_STEPS:
        ordered = sorted(events)
        first, last = ordered[0][0], ordered[-1][0]
        width = (last - first) / MAX_STEPS or 1.0
        binned: dict[int, int] = {}
        for t, units in ordered:
            k = min(int((t - first) / width), MAX_STEPS - 1)
            binned[k] = binned.get(k, 0) + units
        events = [(first + (k + 1) * width, units) for k, units in sorted(binned.items())]
    for t, units in events:
        pts.append((t - t0, float(total)))
        total += units
        pts.append((t - t0, float(total)))
    return tuple(pts)


def _timeline(samples: Sequence[TimelineSample], t0: float, span: float,
              shaded: Sequence[tuple[float, float, str]], ops: Sequence[Op], final: FinalState) -> str:
    """Counters over time (a failed read breaks the lines, so gaps show), with what was really sold: the
    audit's sold list and the clients' acknowledged payments, against the stock line. A backend's sold
    counter can stop at the stock while it sells on (``naive``); these lines show the oversell."""
    head = "<h2>Stock over time</h2>"
    audited, acked = _audited_sales(final), _acknowledged_pays(ops)
    if not any(s.error is None for s in samples) and not audited and not acked:
        return head + '<p class="muted">No counter timeline (timeline.jsonl) and nothing sold in this run.</p>'
    names = ["available", "held", "sold"] + (["refunded"] if any(s.get("refunded") is not None for s in samples)
                                              else [])
    # the stock line first and dotted, so a counter sitting on it (a naive sold counter) is drawn over it
    series = [Series("stock", SERIES_COLOUR["stock"], ((0.0, float(final.stock)), (span, float(final.stock))),
                     dash="2 4")]
    for n in names:
        pts = tuple(None if s.error is not None or s.get(n) is None else (s.t - t0, float(s.get(n)))
                    for s in samples)
        series.append(Series(n, SERIES_COLOUR[n], pts))
    if audited:
        series.append(Series("sold (audit)", SERIES_COLOUR["sold (audit)"], _cumulative(audited, t0)))
    if acked:
        # dashed: on a sound run it lies on the audit's line
        series.append(Series("paid (acknowledged)", SERIES_COLOUR["paid (acknowledged)"], _cumulative(acked, t0),
                             dash="6 4"))
    failed = sum(1 for s in samples if s.error is not None)
    notes = []
    if not any(s.error is None for s in samples):
        notes.append("No counter timeline (timeline.jsonl) in this run: the backend's counters are not drawn, "
                     "what was sold is (from the audit and the clients' history).")
    if failed:
        notes.append(f"{failed} counter read(s) failed; the lines break there.")
    sold_units, acked_units = sum(u for _, u in audited), sum(u for _, u in acked)
    if max(sold_units, acked_units) > final.stock:
        notes.append(f"Sold beyond the stock of {final.stock}: the audit lists {sold_units} units sold and clients "
                     f"were acknowledged {acked_units}; the backend's own sold counter is the \u201csold\u201d line.")
    note = "".join(f'<p class="muted">{_e(n)}</p>' for n in notes)
    return (head + '<div class="card" id="timeline">'
            + line_chart(series, x_max=span, y_label="units", shaded=shaded, css_class="timeline")
            + _legend(series, bool(shaded)) + note + "</div>")


def _fault_table(faults: Sequence[FaultPeriod], t0: float, t_end: float) -> str:
    """Every injected fault, numbered as its band is on the charts."""
    if not faults:
        return ""
    rows = []
    for n, f in enumerate(faults, 1):
        a, b = f.span(t_end)
        end = f"{b - t0:.1f}" if f.end is not None else f"{b - t0:.1f} (never healed: the run's end)"
        outcome = f"failed: {f.error}" if f.error else ("healed" if f.end is not None else "not healed")
        rows.append(f'<tr><td class="num">{n}</td><td>{_e(f.action)}</td><td>{_e(f.role)}</td><td>{_e(f.target)}</td>'
                    f'<td class="num">{a - t0:.1f}</td><td class="num">{_e(end)}</td>'
                    f'<td class="num">{b - a:.1f}</td><td>{_e(outcome)}</td></tr>')
    return ('<h2>Faults</h2><table id="fault-table"><tr><th>#</th><th>action</th><th>role</th><th>target</th>'
            '<th>start (s)</th><th>end (s)</th><th>lasted (s)</th><th>outcome</th></tr>'
            f'{"".join(rows)}</table><p class="muted">Numbered as the shaded bands on the charts.</p>')
def _harness_memory(samples: Sequence[TimelineSample], t0: float, span: float,
                    shaded: Sequence[tuple[float, float, str]]) -> str:
    """The harness's resident memory over the run (``harness_rss_mib`` of the samples), when it was sampled."""
    pts = tuple((s.t - t0, float(s.get("harness_rss_mib"))) for s in samples if s.get("harness_rss_mib") is not None)
    if not pts:
        return ""
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    series = [Series("harness_rss_mib", SERIES_COLOUR["harness_rss_mib"], pts)]
    return ('<h2>Harness memory</h2><div class="card" id="harness-memory">'
            + line_chart(series, x_max=span, y_label="MiB", shaded=shaded, css_class="memory")
            + f'<p class="muted">Resident memory of the harness (oversold, Locust\'s master and workers): '
              f'{lo:,.0f} to {hi:,.0f} MiB over {len(pts)} samples.</p></div>')


def _throughput_and_latency(ops: Sequence[Op], t0: float, span: float,
                            shaded: Sequence[tuple[float, float, str]]) -> str:
    counts, lats = _per_second(ops, t0)
    if not counts:
        return '<h2>Requests and latency</h2><p class="muted">No completed request in the history.</p>'
    buckets = range(0, int(math.floor(span)) + 1)
    rps = [Series(op, SERIES_COLOUR[op], tuple((b + 0.5, float(counts[op].get(b, 0))) for b in buckets))
           for op in LATENCY_OPS if op in counts]
    out = ["<h2>Requests per second</h2>", '<div class="card" id="rps">',
           line_chart(rps, x_max=span, y_label="completions / s", shaded=shaded, height=220, css_class="rps"),
           _legend(rps, bool(shaded)), "</div>", "<h2>Latency quantiles per operation (ms, 1-s buckets)</h2>",
           '<div class="grid">']
    for op in LATENCY_OPS:
        by_bucket = lats.get(op, {})
        series = []
        for q in (50, 90, 99):
            pts = tuple((b + 0.5, quantile(sorted(v), q) or 0.0) for b, v in sorted(by_bucket.items()) if v)
            series.append(Series(f"p({q})", SERIES_COLOUR[f"p({q})"], pts))
        body = (line_chart(series, x_max=span, y_label="ms", shaded=shaded, width=360, height=200,
                           css_class=f"latency latency-{op}") + _legend(series, False)
                if by_bucket else '<p class="muted">no completions</p>')
        out.append(f'<div class="card"><h3>{_e(op)}</h3>{body}</div>')
    out.append("</div>")
    return "".join(out)


def _who_got_it(ops: Sequence[Op], final: FinalState) -> str:
    by_kind, source = units_sold_by_kind(ops, parse_state(final))
    for kind in {o.kind for o in ops}:
        by_kind.setdefault(kind, 0)  # a kind that got nothing is part of the answer
    head = "<h2>Who got the stock</h2>"
    if not by_kind:
        return head + '<p class="muted">Nothing was sold.</p>'
    legit = sum(u for k, u in by_kind.items() if k in LEGIT_KINDS)
    bots = sum(by_kind.values()) - legit
    rows = [("legit buyers (all)", float(legit), "#2b8a3e"), ("bots (all)", float(bots), "#c92a2a")]
    rows += [(f"{k} ({'legit' if k in LEGIT_KINDS else 'bot'})", float(u), "#69db7c" if k in LEGIT_KINDS else "#ff8787")
             for k, u in sorted(by_kind.items(), key=lambda kv: (-kv[1], kv[0]))]
    where = "the audit's sold list" if source == "audit" else "acknowledged payments in the history (no audit)"
    return (head + f'<div class="card" id="who">{bar_chart(rows, total=float(final.stock) or None)}'
            f'<p class="muted">Units sold by user kind, from {_e(where)}. Legit kinds: '
            f'{_e(", ".join(sorted(LEGIT_KINDS)))}; every other kind counts as a bot.</p></div>')


class _Index:
    """History records by op id and by order id, to show what a counterexample names.

    Only the ids the shown counterexamples name are indexed (one pass over the history),
    so a million-record history costs a scan, not a second copy of itself.
    """

    def __init__(self, ops: Sequence[Op], examples: Iterable[Mapping[str, Any]] = ()) -> None:
        want_ops: set[str] = set()
        want_orders: set[str] = set()
        for example in examples:
            op_ids, order_ids = _named_ids(example)
            want_ops |= op_ids
            want_orders |= order_ids
        self.by_op: dict[str, list[Op]] = defaultdict(list)
        self.order_of_op: dict[str, str] = {}
        self.by_order: dict[str, list[Op]] = defaultdict(list)
        if not want_ops and not want_orders:
            return
        for o in ops:
            if o.op_id in want_ops:
                self.by_op[o.op_id].append(o)
            if o.order_id:
                self.order_of_op[o.op_id] = o.order_id
        # a record names its order itself, or (an order's invoke) through another record of its op
        for o in ops:
            oid = o.order_id or self.order_of_op.get(o.op_id)
            if oid and oid in want_orders:
                self.by_order[oid].append(o)

    def records_for(self, example: Mapping[str, Any]) -> list[Op]:
        op_ids, order_ids = _named_ids(example)
        found: dict[tuple[str, str, float], Op] = {}
        for oid in order_ids:
            for o in self.by_order.get(oid, ()):
                found[(o.op_id, o.type, o.time)] = o
        for op_id in op_ids:
            for o in self.by_op.get(op_id, ()):
                found[(o.op_id, o.type, o.time)] = o
        return sorted(found.values(), key=lambda o: (o.time, o.type != "invoke"))


def _named_ids(example: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """The op ids and order ids a counterexample names."""
    op_ids: set[str] = set()
    order_ids: set[str] = set()
    for key, value in example.items():
        values = value if isinstance(value, list) else [value]
        if key.endswith("op_id") or key.endswith("op_ids"):
            op_ids.update(str(v) for v in values if v is not None)
        elif key in ("order_id", "order_ids"):
            order_ids.update(str(v) for v in values if v is not None)
    return op_ids, order_ids


def _invariants(verdict: Verdict, ops: Sequence[Op], t0: float) -> str:
    shown_examples = [ex for inv in verdict.invariants if inv.status != "pass"
                      for ex in inv.counterexamples[:MAX_EXAMPLES_ON_PAGE]]
    index = _Index(ops, shown_examples)
    rows = "".join(f'<tr><td>{_badge(inv.status)}</td><td><code>{_e(inv.name)}</code></td><td>{_e(inv.message)}</td></tr>'
                   for inv in verdict.invariants)
    out = [f'<h2>Invariants</h2><table id="invariants"><tr><th></th><th>invariant</th><th>message</th></tr>{rows}</table>']
    with_examples = [inv for inv in verdict.invariants if inv.counterexamples and inv.status != "pass"]
    out.append("<h2>Counterexamples</h2>")
    if not with_examples:
        out.append('<p class="muted">None: no invariant is violated or undecided with evidence.</p>')
    for inv in with_examples:
        total = len(inv.counterexamples)
        on_page = min(total, MAX_EXAMPLES_ON_PAGE)
        rest = on_page - OPEN_EXAMPLES
        left = total - on_page
        what = (f", all below: the first {OPEN_EXAMPLES} open, the other {rest} folded" if rest > 0 and not left else
                f", the first {on_page} below ({OPEN_EXAMPLES} open, {rest} folded); all {total} are in results.json"
                if left else "")
        out.append(f'<section class="card counterexamples" id="cx-{_e(inv.name)}"><h3>{_badge(inv.status)} '
                   f'<code>{_e(inv.name)}</code> — {total} counterexample(s){what}</h3>')
        for n, example in enumerate(inv.counterexamples[:on_page], 1):
            if n == OPEN_EXAMPLES + 1:
                out.append(f'<details class="more-examples"><summary>{rest} more counterexample(s) of '
                           f'<code>{_e(inv.name)}</code>: #{n} to #{on_page}</summary>')
            out.append(_example(n, example, index.records_for(example), t0))
        if rest > 0:
            out.append("</details>")
        if left:
            out.append(f'<p class="muted cx-left">{left} more counterexample(s) of <code>{_e(inv.name)}</code>, '
                       f'#{on_page + 1} to #{total}, are not on this page: results.json lists all {total}.</p>')
        out.append("</section>")
    return "".join(out)


def _example(n: int, example: Mapping[str, Any], records: Sequence[Op], t0: float) -> str:
    fields = "".join(f"<tr><th>{_e(k)}</th><td class=\"mono\">{_e(_field(k, v, t0))}</td></tr>"
                     for k, v in example.items())
    out = [f'<div class="example"><h3>#{n}</h3><table class="kv">{fields}</table>']
    if records:
        shown = records[:MAX_RECORDS_PER_EXAMPLE]
        rows = "".join(
            f'<tr><td class="num">{(o.time - t0):.3f}</td><td>{_e(o.type)}</td><td>{_e(o.op)}</td>'
            f'<td class="mono">{_e(o.op_id)}</td><td class="mono">{_e(o.user_id)}</td><td>{_e(o.kind)}</td>'
            f'<td class="mono">{_e(o.order_id)}</td><td class="num">{_num(o.qty)}</td><td>{_e(o.status)}</td>'
            f'<td>{_e(o.code)}</td><td class="num">{_num(o.latency_ms)}</td></tr>'
            for o in shown)
        more = (f'<p class="muted">{len(records) - len(shown)} more records in history.jsonl.</p>'
                if len(records) > len(shown) else "")
        out.append('<table class="records"><tr><th>t (s)</th><th>type</th><th>op</th><th>op id</th><th>user</th>'
                   '<th>kind</th><th>order id</th><th>qty</th><th>status</th><th>code</th><th>latency ms</th></tr>'
                   f"{rows}</table>{more}")
    else:
        out.append('<p class="muted">The history has no record naming this counterexample\'s operations.</p>')
    out.append("</div>")
    return "".join(out)


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _field(key: str, value: Any, t0: float) -> str:
    """A counterexample's field as text; an instant in ms (``paid_ms``, ``expires_ms``...) as a time a
    person reads: seconds from the first record, and the UTC clock time when it is an epoch instant."""
    if key.endswith("_ms") and not key.endswith(("overdue_ms", "latency_ms", "lag_ms", "ttl_ms")) \
            and isinstance(value, (int, float)) and not isinstance(value, bool):
        return readable_ms(float(value), t0)
    return _plain(value)


def readable_ms(ms: float, t0: float) -> str:
    """``t=+1.250 s`` from the first record, with ``14:03:07.250 UTC`` for an epoch instant, and the raw value.

    >>> readable_ms(1_000_120, 1000.0)
    't=+0.120 s (1000120)'
    """
    rel = f"t={ms / 1000.0 - t0:+.3f} s"
    if ms >= 1e11:  # after 1973: an epoch instant, not a small test clock
        clock = datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        return f"{clock} UTC, {rel} ({int(ms)})"
    return f"{rel} ({int(ms)})"


def _metrics_table(evaluation: Evaluation | None) -> str:
    if evaluation is None:
        return ""
    m = evaluation.metrics
    rows = []
    for name, spec in METRICS.items():
        metric = m.get(name)
        if metric is None:
            stats = f'<span class="muted">not measured: {_e(m.missing.get(name, "no data"))}</span>'
        else:
            stats = " · ".join(f"{_e(k)} {_num(v, 4)}" for k, v in metric.stats.items())
        rows.append(f"<tr><td><code>{_e(name)}</code></td><td>{_e(spec.kind)}</td><td>{_e(spec.unit)}</td>"
                    f"<td>{stats}</td><td class=\"muted\">{_e(spec.description)}</td></tr>")
    return ('<h2>Metrics</h2><table id="metrics"><tr><th>metric</th><th>kind</th><th>unit</th><th>statistics</th>'
            f'<th>meaning</th></tr>{"".join(rows)}</table>')
