"""What a checked run leaves behind: results.json (against its schema), junit.xml and report.html.

The run directories are synthetic (``synthetic_run``) but written and checked
with the real functions; ``report.html`` is opened in a real headless Chromium.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import struct
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import jsonschema
import pytest

from oversold.checker import check
from oversold.history import FinalState, read_history
from oversold.report import format_summary
from oversold.results import load_schema, read_jsonl_tolerant, results_body, validate_results, write_outputs
from oversold.scenario import load_scenario
from synthetic_run import OVERSOLD_ORDER, make_run_dir

REPO = Path(__file__).resolve().parent.parent
THRESHOLDS = {"latency.order": ["p(99)<20", "count>=5"], "sync_lag": ["max<2000"], "errors": ["rate<0.01"]}


def checked(run_dir: Path):
    """Check a saved run directory the way ``oversold check`` does; returns (verdict, evaluation)."""
    scenario = load_scenario(run_dir / "scenario.yaml")
    ops = read_history(run_dir / "history.jsonl")
    final = FinalState.from_dict(json.loads((run_dir / "final_state.json").read_text()))
    verdict = check(ops, final, grace_ms=scenario.checker.grace_ms, expect_sell_out=scenario.checker.expect_sell_out)
    return verdict, write_outputs(run_dir, scenario, ops, final, verdict, elapsed_s=4.25)


def validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


# --------------------------------------------------------------------------- results.json


@pytest.mark.parametrize("stock, audit, verdict", [(3, True, "pass"), (2, True, "fail"), (3, False, "inconclusive")])
def test_results_json_from_real_code_matches_its_schema(tmp_path, stock, audit, verdict):
    run = make_run_dir(tmp_path / "run", stock=stock, audit=audit, thresholds=THRESHOLDS)
    checked(run)
    body = json.loads((run / "results.json").read_text())
    validator().validate(body)
    validate_results(body)
    assert body["verdict"] == verdict
    assert body["elapsed_s"] == 4.25
    assert {"stock", "sold", "oversold_units"} <= set(body["totals"])
    assert [t["metric"] for t in body["thresholds"]] == ["latency.order", "latency.order", "sync_lag", "errors"]
    assert "latency.order" in body["metrics"] and "sync_lag" not in body["metrics"]


def test_schema_catches_what_it_documents(tmp_path):
    run = make_run_dir(tmp_path / "run", thresholds=THRESHOLDS)
    checked(run)
    body = json.loads((run / "results.json").read_text())
    v = validator()
    with pytest.raises(jsonschema.ValidationError):
        validate_results({**body, "verdict": "maybe"})
    for broken in (
        {**body, "verdict": "maybe"},
        {**body, "surprise": 1},
        {**body, "metrics": {**body["metrics"], "latency.ordr": {"count": 1}}},
        {**body, "thresholds": [{**body["thresholds"][2], "passed": True}]},   # unmeasured yet passed
        {**body, "invariants": [{**body["invariants"][0], "status": "ok"}]},
        {k: val for k, val in body.items() if k != "totals"},
    ):
        assert not v.is_valid(broken)


def test_a_recheck_keeps_elapsed_and_results_without_thresholds_still_validate(tmp_path):
    run = make_run_dir(tmp_path / "run")
    scenario, verdict_and_eval = load_scenario(run / "scenario.yaml"), checked(run)
    ops = read_history(run / "history.jsonl")
    final = FinalState.from_dict(json.loads((run / "final_state.json").read_text()))
    write_outputs(run, scenario, ops, final, verdict_and_eval[0], elapsed_s=None)
    body = json.loads((run / "results.json").read_text())
    assert body["elapsed_s"] == 4.25 and body["thresholds"] == []
    validator().validate(body)
    validator().validate(results_body(scenario, verdict_and_eval[0], None, elapsed_s=None))


def test_timeline_reader_skips_a_torn_last_line(tmp_path):
    run = make_run_dir(tmp_path / "run")
    rows = read_jsonl_tolerant(run / "timeline.jsonl")
    assert len(rows) == 7 and rows[-1]["sold"] == 3
    assert read_jsonl_tolerant(run / "nope.jsonl") == []


# --------------------------------------------------------------------------- summary and junit.xml


def test_summary_prints_the_thresholds(tmp_path):
    run = make_run_dir(tmp_path / "run", thresholds=THRESHOLDS)
    verdict, ev = checked(run)
    text = format_summary(verdict, thresholds=ev.thresholds)
    assert "thresholds: 2 of 4 passed, 2 FAILED" in text
    assert "[FAIL] sync_lag max<2000: sync_lag was not measured" in text
    assert "[ok  ] latency.order count>=5" in text


def test_junit_has_one_testcase_per_invariant_and_threshold(tmp_path):
    run = make_run_dir(tmp_path / "run", stock=2, thresholds=THRESHOLDS)
    verdict, ev = checked(run)
    root = ET.parse(run / "junit.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "oversold.synthetic"
    cases = suite.findall("testcase")
    assert len(cases) == len(verdict.invariants) + 4 == int(suite.get("tests"))
    inv = {c.get("name"): c for c in cases if c.get("classname") == "oversold.invariants"}
    assert set(inv) == {i.name for i in verdict.invariants}
    failure = inv["no_oversell"].find("failure")
    assert failure is not None and "oversold" in failure.get("message")
    assert OVERSOLD_ORDER in failure.text and "buyer-3<script>alert(" in failure.text   # intact once parsed
    assert "buyer-3&lt;script&gt;" in (run / "junit.xml").read_text()                    # escaped in the file
    assert inv["no_lost_sale"].find("failure") is None and inv["no_lost_sale"].find("skipped") is None
    th = [c for c in cases if c.get("classname") == "oversold.thresholds"]
    assert [c.get("name") for c in th] == ["latency.order: p(99)<20", "latency.order: count>=5",
                                           "sync_lag: max<2000", "errors: rate<0.01"]
    assert [c.find("failure") is not None for c in th] == [True, False, True, False]
    assert suite.get("failures") == str(2 + 2)
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["verdict"] == "fail" and props["strategy"] == "pre_deduct"


def test_junit_marks_undecided_invariants_skipped_with_the_reason(tmp_path):
    run = make_run_dir(tmp_path / "run", audit=False)
    checked(run)
    suite = ET.parse(run / "junit.xml").getroot().find("testsuite")
    skipped = {c.get("name"): c.find("skipped") for c in suite.findall("testcase") if c.find("skipped") is not None}
    assert "conservation" in skipped and "audit is missing" in skipped["conservation"].get("message")
    assert suite.get("skipped") == str(len(skipped)) and len(skipped) == 7


# --------------------------------------------------------------------------- report.html


def test_report_is_self_contained_and_escapes_the_run(tmp_path):
    run = make_run_dir(tmp_path / "run", stock=2, thresholds=THRESHOLDS)
    checked(run)
    html = (run / "report.html").read_text()
    assert "<script" not in html.lower()                      # neither ours nor the user id's
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)
    assert "http://" not in html and "https://" not in html
    assert '<polyline class="series" data-series="available"' in html
    assert 'data-series="refunded"' in html                   # the samples have it
    # one band in each chart with data: timeline, requests/s, order and pay latency (no cancel happened)
    assert html.count('class="fault"') == 4
    assert OVERSOLD_ORDER in html and "no_oversell" in html


def test_report_without_timeline_or_faults_says_so(tmp_path):
    run = make_run_dir(tmp_path / "run", timeline=False, faults=False)
    checked(run)
    html = (run / "report.html").read_text()
    assert "No counter timeline" in html and 'class="fault"' not in html
    assert ">PASS<" in html


def _chromium() -> str | None:
    """Chromium on PATH, installing Debian's package through scripts/chromium.sh when missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    r = subprocess.run(["bash", str(REPO / "scripts" / "chromium.sh")], capture_output=True, text=True, timeout=900)
    if r.returncode == 0 and r.stdout.strip():
        return r.stdout.strip().splitlines()[-1]
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but chromium could not be installed: {r.stderr[-2000:]}")
    pytest.skip(f"no chromium and it could not be installed: {r.stderr.strip()[-300:]}")


def _chromium_run(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120)


def test_report_renders_in_a_real_headless_browser(tmp_path):
    binary = _chromium()
    run = make_run_dir(tmp_path / "run", stock=2, thresholds=THRESHOLDS)
    checked(run)
    url = (run / "report.html").resolve().as_uri()
    dom = _chromium_run(binary, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    # the verdict first, big: the banner's word is the first text of the body
    assert re.search(r'<section class="verdict" id="verdict"[^>]*>\s*<div class="word">FAIL</div>', page)
    assert page.index('id="verdict"') < page.index('id="totals"') < page.index('id="timeline"')
    assert OVERSOLD_ORDER in page
    timeline = page[page.index('id="timeline"'):page.index("</svg>", page.index('id="timeline"'))]
    assert re.search(r'<polyline [^>]*data-series="sold"[^>]*points="[\d.]+,[\d.]+ ', timeline)
    assert "<script" not in page.lower()                      # the odd user id stayed text
    png = tmp_path / "report.png"
    shot = _chromium_run(binary, tmp_path / "profile-shot", f"--screenshot={png}", "--window-size=1200,2000", url)
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    # chromium really painted the page: the FAIL banner's red near the top, the page's grey below it
    assert _pixel(data, 60, 30) == (0xC9, 0x2A, 0x2A)
    assert _pixel(data, 5, 5) == (0xF8, 0xF9, 0xFA)
    keep = os.environ.get("OVERSOLD_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(png, keep)


def _pixel(png: bytes, x: int, y: int) -> tuple[int, int, int]:
    """The RGB of one pixel of an 8-bit RGB/RGBA, non-interlaced PNG (what chromium writes)."""
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
    for row in range(y + 1):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        prev = line
    return tuple(prev[x * channels:x * channels + 3])  # type: ignore[return-value]
