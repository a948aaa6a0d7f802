"""What a checked run leaves behind: results.json (against its schema), junit.xml and report.html.

The run directories are synthetic (``synthetic_run``) but written and checked
with the real functions; ``report.html`` is opened in a real headless Chromium.
"""

from __future__ import annotations

import html as html_lib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from chromium_util import chromium, chromium_run
from paths import REPO, TESTS
from synthetic_run import FAULTS, OVERSOLD_ORDER, TIMELINE, make_run_dir

from oversold.analysis.results import write_outputs
from oversold.checker import check
from oversold.model.history import FinalState, read_history
from oversold.model.scenario_file import load_scenario
from oversold.model.timeline import read_jsonl_tolerant

THRESHOLDS = {"latency.order": ["p(99)<20", "count>=5"], "sync_lag": ["max<2000"], "errors": ["rate<0.01"]}


def checked(run_dir: Path):
    """Check a saved run directory the way ``oversold check`` does; returns (verdict, evaluation)."""
    scenario = load_scenario(run_dir / "scenario.yaml")
    ops = read_history(run_dir / "history.jsonl")
    final = FinalState.from_dict(json.loads((run_dir / "final_state.json").read_text()))
    verdict = check(ops, final, grace_ms=scenario.checker.grace_ms, expect_sell_out=scenario.checker.expect_sell_out)
    return verdict, write_outputs(run_dir, scenario, ops, final, verdict, elapsed_s=4.25)


# --------------------------------------------------------------------------- results.json


# --------------------------------------------------------------------------- summary and junit.xml


# --------------------------------------------------------------------------- report.html


WINDOW = "--window-size=1200,2000"  # the probe and the screenshot lay the page out alike
PROBE_JS = TESTS / "report_probe.js"


def _probe(binary: str, report: Path, profile: Path) -> dict:
    """What chromium laid out for ``report`` (see report_probe.js), from a copy with the probe appended."""
    page = report.with_name("probe.html")
    page.write_text(report.read_text().replace("</body>", f"<script>{PROBE_JS.read_text()}</script></body>"))
    dom = chromium_run(binary, profile, WINDOW, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="probe" hidden="">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stdout[-2000:]
    return json.loads(html_lib.unescape(found.group(1)))


def _screenshot(binary: str, report: Path, profile: Path) -> bytes:
    png = report.with_name("report.png")
    shot = chromium_run(binary, profile, f"--screenshot={png}", WINDOW, report.resolve().as_uri())
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    return data


def _series(seen: dict, chart: str) -> dict[str, dict]:
    return {s["name"]: s for s in seen["series"] if s["chart"] == chart}


def _height(series: dict) -> float:
    """How far the line's highest point is above the chart's zero line, in SVG pixels."""
    x, y, w, h = series["plot"]
    return y + h - min(py for _, py in series["points"])


def test_report_renders_in_a_real_headless_browser(tmp_path):
    binary = chromium()
    run = make_run_dir(tmp_path / "run", stock=2, thresholds=THRESHOLDS, ghosts=25)
    checked(run)
    report = run / "report.html"
    dom = chromium_run(binary, tmp_path / "profile-dom", "--dump-dom", report.resolve().as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    # the verdict first, big: the banner's word is the first text of the body
    assert re.search(r'<section class="verdict" id="verdict"[^>]*>\s*<div class="word">FAIL</div>', page)
    assert page.index('id="verdict"') < page.index('id="totals"') < page.index('id="timeline"')
    assert OVERSOLD_ORDER in page
    timeline = page[page.index('id="timeline"'):page.index("</svg>", page.index('id="timeline"'))]
    assert re.search(r'<polyline [^>]*data-series="sold"[^>]*points="[\d.]+,[\d.]+ ', timeline)
    assert "<script" not in page.lower()                      # the odd user id stayed text

    seen = _probe(binary, report, tmp_path / "profile-probe")
    # who got the stock, as laid out: label then number, per bar; bars as long as their units
    bars = dict(zip(seen["bars"][::2], seen["bars"][1::2]))
    assert bars == {"legit buyers (all)": "2 (100.0% of stock)", "bots (all)": "26 (1300.0% of stock)",
                    "unknown (bot)": "25 (1250.0% of stock)", "buyer (legit)": "2 (100.0% of stock)",
                    "scalper (bot)": "1 (50.0% of stock)", "hoarder (bot)": "0 (0.0% of stock)"}
    widths = [round(r[2], 1) for r in seen["rects"]]              # bar order: legit, bots, then by units
    assert widths[1] > widths[2] > widths[0] == widths[3] == 2 * widths[4] > 0 and widths[5] == 0
    assert "Who got the stock" in dom.stdout and seen["sections"]["who"][3] > 100
    # the fault period shaded on the timeline and on every chart with data, where it happened
    assert sorted(f["chart"] for f in seen["faults"]) == ["latency latency-order", "latency latency-pay", "rps",
                                                          "timeline"]
    t0, t_end = TIMELINE[0]["t"], TIMELINE[-1]["t"]
    for band in seen["faults"]:
        x, _, w, h = band["plot"]
        assert band["fill"] == "rgb(250, 82, 82)" and band["box"][3] == pytest.approx(h)
        assert band["title"] == "kill backend node1: 0.7s to 1.3s"
        left = band["box"][0] - band["svg"][0]
        assert left == pytest.approx(x + w * (FAULTS[0]["start"] - t0) / (t_end - t0), abs=1)
        assert band["box"][2] == pytest.approx(w * (FAULTS[0]["end"] - FAULTS[0]["start"]) / (t_end - t0), abs=1)
    # requests per second and latency quantiles per operation, drawn with data (no cancel happened)
    rps = _series(seen, "rps")
    assert set(rps) == {"order", "pay"} and all(s["length"] > 50 for s in rps.values())
    assert _height(rps["order"]) > _height(rps["pay"]) > 0         # 3 orders, 2 pays in the busiest second
    for op in ("order", "pay"):
        lat = _series(seen, f"latency latency-{op}")
        assert set(lat) == {"p(50)", "p(90)", "p(99)"} and all(s["length"] > 20 for s in lat.values())
        assert _height(lat["p(99)"]) >= _height(lat["p(90)"]) >= _height(lat["p(50)"]) > 0
    assert re.search(r"cancel\s+no completions", seen["text"]["latency"])
    # every counterexample is on the page: the first 10 laid out, the rest folded away until opened
    examples = [e for e in seen["examples"] if e["section"] == "cx-no_phantom_sale"]
    assert [e["n"] for e in examples] == [f"#{n}" for n in range(1, 26)]
    assert all(e["visible"] and e["box"][3] > 50 and not e["folded"] for e in examples[:10])
    assert all(not e["visible"] and e["folded"] for e in examples[10:])
    fold = next(d for d in seen["details"] if d["section"] == "cx-no_phantom_sale")
    assert not fold["open"] and fold["summary"] == "15 more counterexample(s) of no_phantom_sale: #11 to #25"
    assert fold["box"][3] < 50                                  # just its summary line takes room

    data = _screenshot(binary, report, tmp_path / "profile-shot")
    # chromium really painted the page: the FAIL banner's red near the top, the page's grey below it,
    # and the timeline's fault band pink (#fa5252 at 16% over white) halfway through it
    band = next(f for f in seen["faults"] if f["chart"] == "timeline")
    bx, by, bw, bh = band["box"]
    probes = [(int(bx + bw / 2), int(by + bh * k / 10)) for k in (1, 3, 5, 7, 9)]
    got = _pixels(data, [(60, 30), (5, 5), *probes])
    assert got[0] == (0xC9, 0x2A, 0x2A) and got[1] == (0xF8, 0xF9, 0xFA)
    assert sum(1 for px in got[2:] if _near(px, (254, 227, 227))) >= 3, got
    keep = os.environ.get("OVERSOLD_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(report.with_name("report.png"), keep)


def test_the_fault_table_the_oversell_and_readable_times_render_in_a_real_headless_browser(tmp_path):
    """A naive-like backend: its sold counter stops at the stock (2) while its audit lists 3 units sold and
    clients were acknowledged 3. The stock chart must show the oversell the verdict talks about."""
    binary = chromium()
    run = make_run_dir(tmp_path / "run", stock=2)
    final = json.loads((run / "final_state.json").read_text())
    for counters in (final["counters"], final["audit"]["counters"]):
        counters["sold"] = 2  # the counter, as a read-then-write backend leaves it
    (run / "final_state.json").write_text(json.dumps(final))
    capped = [{**row, "sold": min(row["sold"], 2)} if "sold" in row else row for row in TIMELINE]
    (run / "timeline.jsonl").write_text("".join(json.dumps(r) + "\n" for r in capped))
    verdict, _ = checked(run)
    assert verdict.overall == "fail" and verdict.totals.oversold_units == 1

    seen = _probe(binary, run / "report.html", tmp_path / "profile-probe")
    # the fault table: a row per fault, numbered as its band, with what, where and when
    assert [r["cells"] for r in seen["faultRows"]] == [
        ["#", "action", "role", "target", "start (s)", "end (s)", "lasted (s)", "outcome"],
        ["1", "kill", "backend", "node1", "0.7", "1.3", "0.6", "healed"]]
    assert all(r["box"][2] > 300 and r["box"][3] > 10 for r in seen["faultRows"])  # laid out, not hidden
    assert seen["sections"]["timeline"][1] < seen["sections"]["fault-table"][1]  # right below the stock chart
    labels = [lab for lab in seen["faultLabels"] if lab["chart"] == "timeline"]
    band = next(f for f in seen["faults"] if f["chart"] == "timeline")
    assert [lab["text"] for lab in labels] == ["1"]
    assert band["box"][0] <= labels[0]["box"][0] <= band["box"][0] + band["box"][2]  # the label sits in its band
    # the oversell on the stock chart: what the audit sold and what clients were told, above the stock line,
    # while the backend's counter stays on it
    lines = _series(seen, "timeline")
    stock_y = lines["stock"]["points"][0][1]  # SVG y grows downwards: above the line is a smaller y
    assert min(y for _, y in lines["sold (audit)"]["points"]) < stock_y - 20
    assert min(y for _, y in lines["paid (acknowledged)"]["points"]) < stock_y - 20
    assert min(y for _, y in lines["sold"]["points"]) == pytest.approx(stock_y, abs=0.5)
    assert "the audit lists 3 units sold and clients were acknowledged 3" in seen["text"]["timeline"]
    # instants in counterexamples read as times, not raw epoch numbers
    paid = [v for k, v in seen["fields"] if k == "paid_ms"]
    assert paid and all(re.fullmatch(r"t=\+\d+\.\d{3} s \(\d+\)", v) for v in paid), paid
    assert "t=+2.350 s (1002250)" in paid  # paid 2.25 s after T0, the first record (a sample) 0.1 s before it


def _near(px: tuple[int, int, int], want: tuple[int, int, int], tol: int = 6) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(px, want))


# --------------------------------------------------------------------------- a real run: refunded on the timeline


@pytest.fixture(scope="module")
def storm_run(tmp_path_factory) -> Path:
    """scenarios/payment_storm.yaml run for real (payment_deduct, 150 payers for 50 units), a few seconds."""
    out = tmp_path_factory.mktemp("storm") / "run"
    env = dict(os.environ, OVERSOLD_STATE_DIR=str(out.parent / "state"))
    r = subprocess.run([sys.executable, "-m", "oversold.cli", "run", "scenarios/payment_storm.yaml", "--out", str(out),
                        "-q"], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out


@pytest.mark.e2e
def test_a_real_payment_storm_has_refunded_on_its_timeline(storm_run):
    final = json.loads((storm_run / "final_state.json").read_text())
    refunded_units = sum(r["qty"] for r in final["audit"]["refunds"])
    assert refunded_units > 0 and final["counters"]["refunded"] == refunded_units
    samples = [s for s in read_jsonl_tolerant(storm_run / "timeline.jsonl") if "error" not in s]
    assert samples[0]["refunded"] == 0 and samples[-1]["refunded"] == refunded_units  # sampled as it grew
    html = (storm_run / "report.html").read_text()
    line = re.search(r'<polyline class="series" data-series="refunded"[^>]*points="([^"]+)"', html)
    assert line, "no refunded series in report.html"
    ys = {float(p.split(",")[1]) for p in line.group(1).split()}
    assert len(ys) > 1                                         # not flat at zero: it rose


@pytest.mark.e2e
def test_the_refunded_series_of_a_real_run_renders_in_a_real_headless_browser(storm_run, tmp_path):
    binary = chromium()
    seen = _probe(binary, storm_run / "report.html", tmp_path / "profile-probe")
    timeline = _series(seen, "timeline")
    assert set(timeline) == {"available", "held", "sold", "refunded", "stock", "sold (audit)", "paid (acknowledged)"}
    refunded, sold = timeline["refunded"], timeline["sold"]
    assert refunded["length"] > 100 and refunded["stroke"] == "rgb(174, 62, 201)"
    last = [s for s in read_jsonl_tolerant(storm_run / "timeline.jsonl") if "error" not in s][-1]
    # drawn to scale: the refunded line tops out as far above zero as its units say, against sold's
    assert _height(refunded) / _height(sold) == pytest.approx(last["refunded"] / last["sold"], rel=0.02)
    # and painted: around a point three quarters along its last segment the screenshot has its purple
    (x0, y0), (x1, y1) = refunded["points"][-2:]
    x, y = refunded["svg"][0] + x0 + 0.75 * (x1 - x0), refunded["svg"][1] + y0 + 0.75 * (y1 - y0)
    data = _screenshot(binary, storm_run / "report.html", tmp_path / "profile-shot")
    around = _pixels(data, [(int(x) + dx, int(y) + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)])
    assert any(_near(px, (0xAE, 0x3E, 0xC9), 30) for px in around), around


def _pixels(png: bytes, points: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """The RGB of some pixels of an 8-bit RGB/RGBA, non-interlaced PNG (what chromium writes)."""
    pos, idat, width = 8, b"", 0
    channels = 4
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, _height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            channels = 4 if colour == 6 else 3
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    prev = bytearray(stride)
    wanted: dict[int, list[int]] = {}
    for x, y in points:
        wanted.setdefault(y, []).append(x)
    rows: dict[int, bytearray] = {}
    for row in range(max(wanted) + 1):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif kind in (1, 3, 4):
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = prev[i]
                c = prev[i - channels] if i >= channels else 0
                if kind == 1:
                    line[i] = (line[i] + a) & 0xFF
                elif kind == 3:
                    line[i] = (line[i] + (a + b) // 2) & 0xFF
                else:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        if row in wanted:
            rows[row] = line
        prev = line
    return [tuple(rows[y][x * channels:x * channels + 3]) for x, y in points]  # type: ignore[misc]
