"""What each run started, on disk, and the start-up sweep of what a killed run left behind.

Every run keeps its own state file (``chaos.StateFile``: one JSON line per
process and container label, written as each is started) and an owner file
naming the orchestrator process, both in one directory shared by every run
on the machine:

    $OVERSOLD_STATE_DIR, else $XDG_CACHE_HOME/oversold/state, else ~/.cache/oversold/state
        <run_id>.jsonl        what the run started (pids with start time and argv, container labels)
        <run_id>.owner.json   {"pid", "start_ticks", "run_dir"} of the `oversold run` process

One file per run, not one shared file, so two runs at once never sweep each
other: a run sweeps only state files whose owner process is gone (a run
killed with SIGKILL, or a machine that rebooted). A run that ends normally
removes both files once it has stopped everything it started, and leaves a
copy of what it started in its run directory (``processes.jsonl``).

Usage::

    reports = sweep_dead_runs()                 # before starting anything
    run = RunState.open("r-20240101-120000-1a2b")
    run.state.record_child(child)               # as each child starts
    ...
    run.finish()                                # everything stopped: the files go
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .sweep import StateFile, SweepReport, sweep

STATE_DIR_ENV = "OVERSOLD_STATE_DIR"
PROCESSES_FILE = "processes.jsonl"  # in the run directory: a copy of the state file at the end of the run


def state_dir() -> Path:
    """Where run state files live (see the module docstring)."""
    given = os.environ.get(STATE_DIR_ENV)
    if given:
        return Path(given)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "oversold" / "state"


def _start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (tells a live owner from a reused pid)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def owner_alive(owner: dict[str, Any]) -> bool:
    """Whether the process that owns a state file still runs (same pid *and* start time)."""
    pid, ticks = owner.get("pid"), owner.get("start_ticks")
    if not isinstance(pid, int):
        return False
    now = _start_ticks(pid)
    return now is not None and (ticks is None or now == ticks)


@dataclass
class RunState:
    """One run's state file and owner file."""

    run_id: str
    state: StateFile
    owner_path: Path
    run_dir: Path | None = None
    labels: list[str] = field(default_factory=list)
    containers_pending: bool = False  # a label was recorded and its containers are not known to be removed

    @classmethod
    def open(cls, run_id: str, *, directory: Path | None = None, run_dir: Path | None = None) -> "RunState":
        d = directory or state_dir()
        d.mkdir(parents=True, exist_ok=True)
        owner_path = d / f"{run_id}.owner.json"
        pid = os.getpid()
        # the owner first: a state file without a live owner is swept by the next run
        owner_path.write_text(json.dumps({"pid": pid, "start_ticks": _start_ticks(pid),
                                          "run_dir": str(run_dir) if run_dir else None}), encoding="utf-8")
        return cls(run_id, StateFile(d / f"{run_id}.jsonl"), owner_path, run_dir)

    def record_label(self, label: str) -> None:
        self.labels.append(label)
        self.containers_pending = True
        self.state.record_label(label)

    def containers_removed(self) -> None:
        """Every container of the run's labels was removed (the teardown says so after it did)."""
        self.containers_pending = False

    def still_running(self) -> list[dict[str, Any]]:
        """Recorded processes that are still alive (after teardown this should be empty)."""
        return [e for e in self.state.entries() if e.get("kind") == "pid"
                and _start_ticks(int(e["pid"])) is not None
                and (e.get("start_ticks") is None or _start_ticks(int(e["pid"])) == e["start_ticks"])]

    def finish(self) -> None:
        """The run stopped what it started: keep only what is still there, for a later sweep."""
        if self.run_dir is not None:  # what the run started, kept with the run (tests check it is all gone)
            (self.run_dir / PROCESSES_FILE).write_text(
                "".join(json.dumps(e, sort_keys=True) + "\n" for e in self.state.entries()), encoding="utf-8")
        left = self.still_running()
        if self.containers_pending:
            left += [e for e in self.state.entries() if e.get("kind") in ("label", "container")]
        self.state.rewrite(left)
        if not left:
            self.owner_path.unlink(missing_ok=True)


def sweep_dead_runs(*, directory: Path | None = None, docker_client: Any = None,
                    say: Callable[[str], None] = lambda _m: None) -> list[SweepReport]:
    """Sweep every state file whose owner is gone; returns what each sweep did.

    A sweep stops a recorded process only if ``/proc`` still shows the
    recorded start time and command line, and removes containers only by a
    recorded run label (``chaos.sweep``).
    """
    d = directory or state_dir()
    if not d.is_dir():
        return []
    reports = []
    for path in sorted(d.glob("*.jsonl")):
        run_id = path.name[: -len(".jsonl")]
        owner_path = d / f"{run_id}.owner.json"
        try:
            owner = json.loads(owner_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            owner = {}  # no owner file (cut short, or an earlier sweep left entries): nobody owns it
        if owner_alive(owner):
            continue  # a run in progress: not ours to touch
        report = sweep(StateFile(path), docker_client=docker_client)
        if not report.empty:
            say(f"leftovers of run {run_id}: stopped pids {report.stopped}, removed containers "
                f"{[c[:12] for c in report.containers]}" + (f", errors {report.errors}" if report.errors else ""))
        reports.append(report)
        if not path.exists():
            owner_path.unlink(missing_ok=True)
    for owner_path in d.glob("*.owner.json"):  # owners whose run left no state file and are gone
        run_id = owner_path.name[: -len(".owner.json")]
        if not (d / f"{run_id}.jsonl").exists():
            try:
                owner = json.loads(owner_path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                owner = {}
            if not owner_alive(owner):
                owner_path.unlink(missing_ok=True)
    return reports
