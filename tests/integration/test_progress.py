"""The live progress display: its readers and line (pure), both modes on a fake run
directory, and `oversold run` for real under a pseudo-terminal and into a pipe."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from paths import REPO
from tiny_scenario import write_tiny

from oversold.orchestrate.progress import (
    LOCUST_STATS_HISTORY,
)

ERASE = "\r\x1b[2K"


# --------------------------------------------------------------------------- pure parts


# --------------------------------------------------------------------------- the display on a fake run


# --------------------------------------------------------------------------- the real thing


def oversold_run_argv(tmp_path: Path) -> list[str]:
    scenario = write_tiny(tmp_path)
    return [sys.executable, "-m", "oversold.cli", "run", str(scenario), "--out", str(tmp_path / "run")]


def test_a_real_run_on_a_terminal_shows_a_live_line(tmp_path):
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm", COLUMNS="200")
    proc = subprocess.Popen(oversold_run_argv(tmp_path), cwd=REPO, stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, env=env)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    assert proc.returncode == 0, text
    assert text.count(ERASE) >= 3, text
    redraws = [part for part in text.split(ERASE) if part.startswith("  ▶")]
    assert redraws and all("of 60" in r or "no sample yet" in r for r in redraws)
    assert any(" req/s" in r and "req/s —" not in r for r in redraws + [text]), text
    assert "  ■" in text and "verdict: PASS" in text


def test_a_real_run_into_a_pipe_prints_plain_lines(tmp_path):
    proc = subprocess.run(oversold_run_argv(tmp_path), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "\x1b" not in proc.stdout and "\r" not in proc.stdout
    final = [line for line in proc.stdout.splitlines() if line.startswith("  ■")]
    assert len(final) == 1 and "sold 60 of 60" in final[0] and "faults: none" in final[0]
    assert (tmp_path / "run" / LOCUST_STATS_HISTORY).stat().st_size > 0


def test_quiet_runs_show_no_progress(tmp_path):
    proc = subprocess.run(oversold_run_argv(tmp_path) + ["-q"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "▶" not in proc.stdout and "■" not in proc.stdout
