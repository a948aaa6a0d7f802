"""The live progress display of ``oversold run``: time, requests per second, stock, faults.

While the swarm runs, one status line shows::

    ▶ 12.4s / 60s max │ 1,532 req/s │ available 120  held 31  sold 349 of 500 │ faults: kill node2

On a terminal the line is redrawn in place (carriage return + ECMA-48 "erase
line"); messages of the run (``say``) are printed above it. When stdout is not a
terminal (a CI log, a pipe) the same line is printed plainly every few seconds,
so a log gets a heartbeat but no control characters.

Where the numbers come from — nothing here is guessed:

* elapsed: wall time since the swarm started; planned: ``swarm.duration_s``,
  an upper bound (the swarm stops earlier once the sale sold out).
* available / held / sold: the last line of the run's ``timeline.jsonl``, which
  ``CounterSampler`` appends every 0.2 s from the backend's own counters.
* req/s: requests Locust completed per second, from the ``Total Request
  Count`` of its stats history (``locust --csv``, written by the orchestrator
  into ``logs/locust_stats_history.csv``), over the last rows' own timestamps.
  Locust writes a row each second but flushes the file only every ~5 s, so the
  figure can be a few seconds old; the line says how old when it is over 2 s.
* faults: entries of ``faults.jsonl`` active now — periods (``start``/``end``)
  or ``inject``/``heal`` events keyed by ``injection_id``. No file: ``none``.

Why no library (``rich`` was the alternative): the display is one line and
needs exactly two control sequences, ``\\r`` and ``ESC[2K``, understood by every
terminal emulator in use (Windows 10+ consoles included). ``rich.Live`` would
add three packages to every install for that, and it swaps ``sys.stdout`` while
live, which is global state a library called from pytest should not touch.

Usage::

    display = LiveProgress(sys.stdout)          # picks the mode from stdout.isatty()
    result = run_scenario(scenario, out, progress=display.say, observer=display)
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, Sequence

from oversold.model.timeline import FAULTS_FILE, TIMELINE_FILE

#: Where the orchestrator asks Locust to write its stats CSV (``--csv <run_dir>/logs/locust``).
LOCUST_STATS_HISTORY = Path("logs") / "locust_stats_history.csv"

_ERASE_LINE = "\r\x1b[2K"
# bytes read from the end of a growing file: several lines of either format
_TAIL_BYTES = 16384


class RunObserver(Protocol):
    """What ``run_scenario`` tells an observer: the swarm started; the run is over (stop)."""

    def swarm_started(self, scenario: Any, run_dir: Path) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Snapshot:
    """What the display shows at one moment (pure data; ``None`` = not known yet).

    Usage::

        snap = Snapshot(elapsed_s=3.0, planned_s=60, rps=812.5, rps_age_s=1.0,
                        available=300, held=20, sold=180, stock=500, faults=())
        print(format_line(snap))
    """

    elapsed_s: float
    planned_s: float
    rps: float | None
    rps_age_s: float | None
    available: int | None
    held: int | None
    sold: int | None
    stock: int | None
    faults: tuple[str, ...]
    counters_error: str | None = None


def format_line(snap: Snapshot, *, arrow: str = "▶", bar: str = "│", unknown: str = "—") -> str:
    """One status line of a snapshot (no control characters)."""
    parts = [f"{arrow} {snap.elapsed_s:5.1f}s / {snap.planned_s:g}s max"]
    if snap.rps is None:
        parts.append(f"req/s {unknown}")
    else:
        age = f" ({snap.rps_age_s:.0f}s ago)" if snap.rps_age_s is not None and snap.rps_age_s > 2 else ""
        parts.append(f"{snap.rps:,.0f} req/s{age}")
    if snap.counters_error:
        parts.append(f"stock: counters unreadable ({snap.counters_error})")
    elif snap.available is None:
        parts.append("stock: no sample yet")
    else:
        of = f" of {snap.stock}" if snap.stock is not None else ""
        parts.append(f"available {snap.available}  held {snap.held}  sold {snap.sold}{of}")
    parts.append("faults: " + (", ".join(snap.faults) if snap.faults else "none"))
    return f" {bar} ".join(parts)


# --------------------------------------------------------------------------- readers (tolerant)


def tail_lines(path: Path, max_bytes: int = _TAIL_BYTES) -> list[str]:
    """The complete lines at the end of a file another process is appending to.

    The first line of the window may be cut by the seek and the last one may be
    half written; both are dropped unless the window is the whole file.
    """
    try:
        with open(path, "rb") as f:
            f.seek(0, io.SEEK_END)
            size = f.tell()
            start = max(0, size - max_bytes)
            f.seek(start)
            data = f.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").split("\n")
    if start > 0:
        lines = lines[1:]
    # the last piece is "" after a trailing newline, or a line still being written
    return [line for line in lines[:-1] if line.strip()]


def last_sample(path: Path) -> dict[str, Any] | None:
    """The newest counter sample of ``timeline.jsonl`` (``None`` when there is none yet)."""
    for line in reversed(tail_lines(path)):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            return row
    return None


def locust_rate(path: Path, *, window_s: float = 3.0) -> tuple[float, float] | None:
    """(completed requests per second, timestamp of the newest row) from Locust's stats history.

    Uses the ``Aggregated`` rows' ``Timestamp`` and ``Total Request Count``: the
    count grows by what completed between two rows, so the rate over the last
    ``window_s`` seconds of rows is exact for that window. ``None`` until two
    rows with different timestamps exist.
    """
    lines = tail_lines(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            header = next(csv.reader([f.readline()]))
    except (OSError, StopIteration):
        return None
    try:
        i_ts, i_name, i_total = header.index("Timestamp"), header.index("Name"), header.index("Total Request Count")
    except ValueError:
        return None
    rows: list[tuple[float, int]] = []
    for fields in csv.reader(lines):
        if len(fields) != len(header) or fields[i_name] != "Aggregated":
            continue
        try:
            rows.append((float(fields[i_ts]), int(fields[i_total])))
        except ValueError:
            continue
    if len(rows) < 2:
        return None
    t_last, n_last = rows[-1]
    earlier = [r for r in rows if r[0] <= t_last - window_s] or rows[:1]
    t0, n0 = earlier[-1]
    if t_last <= t0:
        return None
    return max(0, n_last - n0) / (t_last - t0), t_last


def active_faults(rows: Sequence[dict[str, Any]], now: float) -> tuple[str, ...]:
    """Names of the faults active at ``now`` (epoch seconds), from either fault-log shape.

    Periods: ``{"start", "end"?, "action", "target"|"role"}``, active from
    ``start`` until ``end`` (no ``end``: still active). Events: ``{"event":
    "inject"|"heal", "injection_id", "fault": {...}}``, active between them.
    """
    by_injection: dict[str, str] = {}
    active: list[str] = []
    for row in rows:
        event = row.get("event")
        if event in ("inject", "heal"):
            key = str(row.get("injection_id"))
            if event == "inject":
                by_injection[key] = _fault_name(row.get("fault") if isinstance(row.get("fault"), dict) else row)
            else:
                by_injection.pop(key, None)
            continue
        start, end = row.get("start"), row.get("end")
        if not isinstance(start, (int, float)) or start > now:
            continue
        if isinstance(end, (int, float)) and end <= now:
            continue
        active.append(_fault_name(row))
    return tuple(active + list(by_injection.values()))


def _fault_name(f: dict[str, Any]) -> str:
    action = f.get("action") or f.get("kind") or f.get("type") or "fault"
    target = f.get("target") if f.get("target") is not None else f.get("role")
    return f"{action} {target}" if target is not None else str(action)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in tail_lines(path, max_bytes=1 << 20):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- the display


class LiveProgress:
    """The live display: a redrawn status line on a terminal, periodic plain lines otherwise.

    It is both the run's ``progress`` callback (``say``) and its observer
    (``swarm_started`` / ``stop``); a background thread reads the run
    directory's files and redraws. Thread-safe: ``say`` may be called from any
    thread while the line is live.

    Usage::

        display = LiveProgress(sys.stdout)                  # tty: live line; else a line every 5 s
        display = LiveProgress(log_file, live=False, plain_every_s=10)
        run_scenario(scenario, out, progress=display.say, observer=display)
    """

    def __init__(self, stream: IO[str], *, live: bool | None = None, refresh_s: float = 0.25,
                 plain_every_s: float = 5.0, prefix: str = "  ") -> None:
        self._out = stream
        self.live = _is_terminal(stream) if live is None else live
        self._tick = refresh_s if self.live else plain_every_s
        self._prefix = prefix
        # a log in a non-UTF-8 locale cannot take "▶" or "│": ASCII stand-ins there
        encoding = getattr(stream, "encoding", None)  # None: a str buffer (StringIO), anything goes
        utf = encoding is None or str(encoding).lower().replace("-", "").startswith("utf")
        self._glyphs = ("▶", "■", "│", "—") if utf else (">", "#", "|", "-")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._run_dir: Path | None = None
        self._planned_s = 0.0
        self._stock: int | None = None
        self._started = 0.0
        self._wall_started = 0.0
        self._shown = False  # a live line is on screen and must be erased before other output
        self.lines_written = 0

    # -- the progress callback ---------------------------------------------------------

    def say(self, message: str) -> None:
        """Print one message of the run, above the live line when there is one."""
        with self._lock:
            self._erase()
            self._out.write(f"{self._prefix}{message}\n")
            if self._thread is not None and self.live:
                self._draw(self.snapshot())
            self._out.flush()

    # -- the observer ------------------------------------------------------------------

    def swarm_started(self, scenario: Any, run_dir: Path) -> None:
        """Start showing: the swarm of ``scenario`` runs now and writes into ``run_dir``."""
        self.stop()
        self._run_dir = Path(run_dir)
        self._planned_s = float(scenario.swarm.duration_s)
        self._stock = int(scenario.sale.stock)
        self._started = time.monotonic()
        self._wall_started = time.time()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="oversold-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop redrawing and leave the last state as one ordinary line. Safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=5)
        with self._lock:
            self._erase()
            self._write_plain(self.snapshot(), final=True)
            self._out.flush()

    def snapshot(self) -> Snapshot:
        """What the run directory says now."""
        run_dir = self._run_dir or Path(".")
        sample = last_sample(run_dir / TIMELINE_FILE) or {}
        rate = locust_rate(run_dir / LOCUST_STATS_HISTORY)
        if rate is not None and rate[1] < self._wall_started - 1:
            rate = None  # the file of an earlier run in the same directory, before Locust truncates it
        now = time.time()
        return Snapshot(
            elapsed_s=time.monotonic() - self._started if self._started else 0.0,
            planned_s=self._planned_s,
            rps=rate[0] if rate else None,
            rps_age_s=max(0.0, now - rate[1]) if rate else None,
            available=_int_or_none(sample.get("available")),
            held=_int_or_none(sample.get("held")),
            sold=_int_or_none(sample.get("sold")),
            stock=_int_or_none(sample.get("stock")) if sample.get("stock") is not None else self._stock,
            faults=active_faults(_read_jsonl(run_dir / FAULTS_FILE), now),
            counters_error=str(sample["error"]) if "error" in sample else None,
        )

    # -- drawing -----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self._tick):
            with self._lock:
                if self._stop.is_set():
                    break
                snap = self.snapshot()
                if self.live:
                    self._erase()
                    self._draw(snap)
                else:
                    self._write_plain(snap)
                self._out.flush()

    def _draw(self, snap: Snapshot) -> None:
        width = shutil.get_terminal_size((100, 24)).columns
        line = (self._prefix + self._format(snap))[: max(10, width - 1)]  # never wrap: \r returns one row only
        self._out.write(line)
        self._shown = True

    def _erase(self) -> None:
        if self._shown:
            self._out.write(_ERASE_LINE)
            self._shown = False

    def _format(self, snap: Snapshot, *, final: bool = False) -> str:
        live, done, bar, unknown = self._glyphs
        return format_line(snap, arrow=done if final else live, bar=bar, unknown=unknown)

    def _write_plain(self, snap: Snapshot, *, final: bool = False) -> None:
        self._out.write(self._prefix + self._format(snap, final=final) + "\n")
        self.lines_written += 1


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _is_terminal(stream: IO[str]) -> bool:
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    # TERM=dumb (Emacs shells, some CI runners) has a tty that does not understand ESC[2K
    return tty and os.environ.get("TERM", "") != "dumb"
