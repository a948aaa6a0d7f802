"""The state file a run keeps of what it started, and the start-up sweep that removes leftovers.

A run records every process (pid, process group, argv, start time) and every
container label it starts into a JSON-lines state file, one record at a time,
so that even a run killed with SIGKILL leaves an exact list behind. The next
run calls ``sweep`` on that file before it starts anything: it stops the
recorded processes that are still the same processes, and removes the
containers that carry a recorded run label. Nothing else is touched.

Usage::

    state = StateFile(runs_dir / ".oversold-state.jsonl")
    report = sweep(state)          # leftovers of a killed run, if any
    state.record_label("oversold.run=" + run_id)
    server = RedisServer.start(); state.record_child(server.child)
    ...
    state.clear()                  # a clean end: nothing left to sweep
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from oversold.infra.procs import Child


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of ``pid``, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[19])


def _proc_cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _alive(pid: int) -> bool:
    stat = proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")  # a zombie has already died


def cmdline_matches(actual: Sequence[str], argv: Sequence[str]) -> bool:
    """Whether a live process's ``/proc/<pid>/cmdline`` is the recorded ``argv``.

    Exact equality, or -- because some servers (``redis-server`` among them)
    rewrite their own title into one string such as
    ``/usr/bin/redis-server 127.0.0.1:6379`` -- a single string whose first word
    is the recorded program.
    """
    actual, argv = list(actual), list(argv)
    if not argv or not actual:
        return False
    if actual == argv:
        return True
    return len(actual) == 1 and actual[0].split(" ", 1)[0] == argv[0]


class StateFile:
    """Append-only JSON lines of the pids and containers a run started.

    Usage::

        state = StateFile(path)
        state.record_child(child)
        state.record_label("oversold.run=r1")
        state.entries()    # [{"kind": "pid", ...}, {"kind": "label", ...}]
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # one write per record, flushed on close: a SIGKILL of the run loses nothing written
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)

    def record_pid(self, pid: int, argv: Sequence[str], *, name: str = "", pgid: int | None = None) -> None:
        stat = proc_stat(pid)
        self._append({"kind": "pid", "pid": pid, "pgid": pgid, "argv": list(argv), "name": name,
                      "start_ticks": stat[1] if stat else None})

    def record_child(self, child: Child) -> None:
        # Child leads its own process group (start_new_session), so its pgid is its pid
        self.record_pid(child.pid, child.argv, name=child.name, pgid=child.pid)

    def record_label(self, label: str) -> None:
        if not label:
            raise ValueError("an empty label would match every container")
        self._append({"kind": "label", "label": label})

    def record_container(self, container_id: str, label: str, *, name: str = "") -> None:
        if not label:
            raise ValueError("a container is recorded with the run label it carries")
        self._append({"kind": "container", "id": container_id, "label": label, "name": name})

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a kill mid-write
        return out

    def rewrite(self, entries: Sequence[dict[str, Any]]) -> None:
        with self._lock:
            if not entries:
                self.path.unlink(missing_ok=True)
                return
            tmp = self.path.with_suffix(self.path.suffix + ".tmp")
            tmp.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries), encoding="utf-8")
            os.replace(tmp, self.path)

    def clear(self) -> None:
        self.rewrite([])


@dataclass
class SweepReport:
    """What ``sweep`` did: pids stopped, pids left alone (with why), containers removed, errors."""

    stopped: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.stopped or self.containers or self.errors)


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return not _alive(pid)


def _signal(pid: int, pgid: int | None, sig: int) -> None:
    try:
        # the whole group only when the recorded process still leads it (a Child does)
        if pgid == pid and os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def sweep_pid(entry: dict[str, Any], timeout_s: float = 5.0) -> tuple[bool, str]:
    """Stop one recorded process if it is still that process: (stopped, why not)."""
    pid = int(entry["pid"])
    stat = proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False, "gone"
    if entry.get("start_ticks") is not None and stat[1] != entry["start_ticks"]:
        return False, "pid reused (start time differs)"
    actual = _proc_cmdline(pid) or []
    if not cmdline_matches(actual, entry.get("argv") or []):
        return False, f"pid reused (cmdline is {' '.join(actual)[:120]!r})"
    pgid = entry.get("pgid")
    _signal(pid, pgid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
    _signal(pid, pgid, signal.SIGTERM)
    if not _wait_gone(pid, timeout_s):
        _signal(pid, pgid, signal.SIGKILL)
        if not _wait_gone(pid, timeout_s):
            return False, "did not die"
    return True, ""


def sweep(state: StateFile | Path | str, *, docker_client: Any = None, timeout_s: float = 5.0) -> SweepReport:
    """Remove what an earlier run recorded in ``state`` and left running; rewrite ``state`` with what remains.

    Processes are signalled only after ``/proc/<pid>`` shows the same start
    time and command line as recorded. Containers are removed only by a
    recorded run label. With no Docker engine reachable the container records
    stay in the file for a later sweep.
    """
    state = state if isinstance(state, StateFile) else StateFile(state)
    report = SweepReport()
    left: list[dict[str, Any]] = []
    labels: list[str] = []
    seen: set[int] = set()
    for entry in state.entries():
        kind = entry.get("kind")
        if kind == "pid" and int(entry["pid"]) not in seen:
            seen.add(int(entry["pid"]))
            stopped, why = sweep_pid(entry, timeout_s)
            if stopped:
                report.stopped.append(int(entry["pid"]))
            elif why == "did not die":
                report.errors.append(f"pid {entry['pid']} ({entry.get('name')}) did not die")
                left.append(entry)
            else:
                report.skipped.append((int(entry["pid"]), why))
        elif kind in ("label", "container") and entry.get("label") and entry["label"] not in labels:
            labels.append(entry["label"])
    if labels:
        try:
            from .docker_driver import remove_labelled  # docker only when a run used it

            client = docker_client
            if client is None:
                import docker

                client = docker.from_env()
            for label in labels:
                report.containers.extend(remove_labelled(client, label))
        except Exception as e:  # no engine now: keep the labels for a later sweep
            report.errors.append(f"containers not swept ({type(e).__name__}: {e})")
            left.extend({"kind": "label", "label": label} for label in labels)
    state.rewrite(left)
    return report
