"""The live progress display: its readers and line (pure), both modes on a fake run
directory, and `oversold run` for real under a pseudo-terminal and into a pipe."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from backend_util import wait_for

from oversold.orchestrate.progress import (
    LOCUST_STATS_HISTORY,
    LiveProgress,
    Snapshot,
    active_faults,
    format_line,
    last_sample,
    locust_rate,
    tail_lines,
)

ERASE = "\r\x1b[2K"
HEADER = ("Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,"
          "100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,"
          "Total Min Response Time,Total Max Response Time,Total Average Content Size")


def stats_row(ts: float, total: int, name: str = "Aggregated") -> str:
    return f"{int(ts)},30,,{name},12.0,0.0," + ",".join(["1"] * 11) + f",{total},0,1,1.5,0,9,40"


# --------------------------------------------------------------------------- pure parts


def test_line_shows_time_rate_stock_and_faults():
    snap = Snapshot(elapsed_s=12.4, planned_s=60, rps=1532.4, rps_age_s=0.5, available=120, held=31, sold=349,
                    stock=500, faults=("kill node2",))
    line = format_line(snap)
    assert line == "▶  12.4s / 60s max │ 1,532 req/s │ available 120  held 31  sold 349 of 500 │ faults: kill node2"
    assert "\x1b" not in line


def test_line_says_what_it_does_not_know_yet_and_how_old_the_rate_is():
    snap = Snapshot(0.2, 30, None, None, None, None, None, 500, ())
    assert "req/s —" in format_line(snap) and "stock: no sample yet" in format_line(snap)
    assert "faults: none" in format_line(snap)
    old = Snapshot(9, 30, 100.0, 4.2, 1, 2, 3, 6, (), counters_error="ConnectionRefused")
    assert "100 req/s (4s ago)" in format_line(old)
    assert "counters unreadable (ConnectionRefused)" in format_line(old)


def test_tail_lines_drops_a_half_written_last_line(tmp_path):
    p = tmp_path / "timeline.jsonl"
    p.write_text('{"available": 5}\n{"available": 4}\n{"avail')
    assert tail_lines(p) == ['{"available": 5}', '{"available": 4}']
    assert last_sample(p) == {"available": 4}
    assert last_sample(tmp_path / "missing.jsonl") is None


def test_tail_lines_of_a_long_file_reads_only_its_end(tmp_path):
    p = tmp_path / "timeline.jsonl"
    p.write_text("".join(json.dumps({"sold": i}) + "\n" for i in range(50_000)))
    lines = tail_lines(p, max_bytes=4096)
    assert json.loads(lines[-1]) == {"sold": 49_999}
    assert all(line.startswith("{") for line in lines)  # the cut first line was dropped
    assert last_sample(p) == {"sold": 49_999}


def test_locust_rate_is_the_growth_of_the_total_count_over_the_rows_timestamps(tmp_path):
    p = tmp_path / "stats_history.csv"
    rows = [stats_row(100, 0), stats_row(101, 200), stats_row(101, 5000, name="POST /order"),
            stats_row(102, 500), stats_row(103, 900), stats_row(104, 1400)]
    p.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    rate, newest = locust_rate(p, window_s=3.0)
    assert newest == 104
    assert rate == pytest.approx((1400 - 200) / 3)  # 101..104; other names' rows are not the total
    p.write_text(HEADER + "\n" + stats_row(100, 10) + "\n")
    assert locust_rate(p) is None  # one row: no rate yet
    assert locust_rate(tmp_path / "none.csv") is None


def test_active_faults_from_periods_and_from_inject_heal_events():
    periods = [{"start": 10, "end": 20, "action": "kill", "target": "node1"},
               {"start": 15, "action": "pause", "role": "redis"},
               {"start": 30, "end": 40, "action": "kill", "target": "node2"}]
    assert active_faults(periods, now=16) == ("kill node1", "pause redis")
    assert active_faults(periods, now=25) == ("pause redis",)
    events = [{"event": "inject", "injection_id": "a", "fault": {"action": "latency", "role": "proxy"}},
              {"event": "inject", "injection_id": "b", "fault": {"action": "kill", "target": "node1"}},
              {"event": "heal", "injection_id": "a"}]
    assert active_faults(events, now=0) == ("kill node1",)


# --------------------------------------------------------------------------- the display on a fake run


def fake_run(run_dir: Path, stop: threading.Event) -> None:
    """Writes what a run writes while it goes: counter samples and Locust's stats history."""
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    stats = run_dir / LOCUST_STATS_HISTORY
    stats.write_text(HEADER + "\n")
    sold = 0
    t0 = int(time.time())
    row = 0
    with open(run_dir / "timeline.jsonl", "a") as tl, open(stats, "a") as st:
        while not stop.is_set():
            sold = min(100, sold + 7)
            tl.write(json.dumps({"t": time.time(), "available": 100 - sold, "held": 0, "sold": sold}) + "\n")
            tl.flush()
            # a Locust row a second, faster than real time so a short test sees several seconds
            row += 1
            st.write(stats_row(t0 + row, row * 50) + "\n")
            st.flush()
            stop.wait(0.05)  # the pace of the fake run's writes


SCENARIO = SimpleNamespace(swarm=SimpleNamespace(duration_s=30.0), sale=SimpleNamespace(stock=100))


def drawn(out: io.StringIO) -> list[str]:
    """The status lines shown so far: live redraws and plain beats alike."""
    return [part for part in re.split(r"\r\x1b\[2K|\n", out.getvalue()) if part.startswith("  ▶")]


def watch(tmp_path: Path, display: LiveProgress, out: io.StringIO, beats: int = 3) -> None:
    """Show a fake run: ``beats`` status lines, a message, ``beats`` more, one with the stats file's rate."""
    stop = threading.Event()
    writer = threading.Thread(target=fake_run, args=(tmp_path, stop))
    writer.start()
    try:
        display.swarm_started(SCENARIO, tmp_path)
        assert wait_for(lambda: len(drawn(out)) >= beats, timeout=10)
        display.say("a message of the run")
        shown = len(drawn(out))
        assert wait_for(lambda: len(drawn(out)) >= shown + beats
                        and any("req/s —" not in line for line in drawn(out)), timeout=10)
    finally:
        display.stop()
        stop.set()
        writer.join()


def test_live_mode_redraws_one_line_in_place_and_prints_messages_above_it(tmp_path):
    out = io.StringIO()
    display = LiveProgress(out, live=True, refresh_s=0.05)
    watch(tmp_path, display, out)
    text = out.getvalue()
    assert text.count(ERASE) >= 5  # redrawn, not appended
    before, _, after = text.partition("  a message of the run\n")
    assert before.endswith(ERASE), "the live line is erased before a message is printed"
    assert after.startswith("  ▶"), "and drawn again below it"
    final = text.rsplit(ERASE, 1)[1]
    assert final.startswith("  ■") and final.endswith("\n") and "of 100" in final
    assert "\n" not in text.replace("  a message of the run\n", "").rstrip("\n")  # one row, redrawn


def test_plain_mode_prints_lines_without_control_characters(tmp_path):
    out = io.StringIO()
    display = LiveProgress(out, live=False, plain_every_s=0.1)
    watch(tmp_path, display, out)
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text
    lines = text.splitlines()
    assert "  a message of the run" in lines
    beats = [line for line in lines if line.startswith("  ▶")]
    assert len(beats) >= 4 and display.lines_written >= 5
    assert lines[-1].startswith("  ■") and "req/s" in lines[-1] and "sold" in lines[-1]
    assert any("req/s —" not in line for line in beats)  # the rate came from the stats file


def test_mode_follows_the_stream_and_a_dumb_terminal_gets_plain_lines(monkeypatch):
    assert LiveProgress(io.StringIO()).live is False
    master, slave = pty.openpty()
    try:
        with open(slave, "w", closefd=False) as tty:
            monkeypatch.setenv("TERM", "xterm")
            assert LiveProgress(tty).live is True
            monkeypatch.setenv("TERM", "dumb")
            assert LiveProgress(tty).live is False
    finally:
        os.close(master)
        os.close(slave)


def test_a_non_utf8_log_gets_ascii_glyphs(tmp_path):
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    display = LiveProgress(out, live=False)
    display.swarm_started(SCENARIO, tmp_path)
    display.stop()
    out.flush()
    assert raw.getvalue().decode("ascii").startswith("  # ")


# --------------------------------------------------------------------------- the real thing


