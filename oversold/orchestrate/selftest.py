"""``oversold selftest``: plant bugs into the reference backend, run scenarios against each, score the catch.

For every planted bug (``oversold.orchestrate.planted``) a patched copy of the
reference backend is made, and scenarios run against it as plain ``oversold
run`` processes with the copy first on ``PYTHONPATH`` and as their working
directory, so every node, order processor and sync worker they start is the
mutant. A bug is *caught* when a run exits 1 (an invariant failed) and the
unpatched backend then runs the same scenario and seed again with no invariant failing (else the
failure is noise, listed, not counted); the table says by which scenario and
which invariants. The bug's own ``scenarios`` are
tried first, then the rest in order, stopping at the first catch (``every``:
all of them). A scenario counts only if it runs clean on an unpatched copy
with the same seed (no invariant failed; a missed threshold, say a latency on a loaded
machine, is allowed): a scenario that fails on correct code cannot catch anything.

The score is caught / planted. Seeds are fixed (``seed``), so a run is
repeatable as far as timing allows.

Usage::

    result = run_selftest(sorted(Path("scenarios").glob("*.yaml")), BUGS, Path("runs/selftest"), seed=1)
    print(format_table(result))     # planted bug -> caught by (scenario, invariants), score, runtime
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from oversold.errors import BadInput
from oversold.model.exit_codes import EXIT_FAIL, EXIT_PASS, EXIT_THRESHOLD
from oversold.model.scenario_file import load_scenario

from .planted import PlantedBug, plant

RUN_TIMEOUT_S = 300.0  # one scenario run, stand-up to verdict; past it the run counts as an error
#: the default scenarios are those that stand up by themselves and swarm at most this long: a soak
#: (scenarios/soak.yaml, 5 minutes) would be run for every bug not caught before it; name one to use it
DEFAULT_MAX_SWARM_S = 60.0


@dataclass(frozen=True)
class SelftestRun:
    """One scenario run against one backend (``bug`` None: the unpatched baseline)."""

    bug: str | None
    scenario: str
    exit_code: int
    failed: tuple[str, ...]  # invariants that failed
    elapsed_s: float
    run_dir: str


@dataclass
class SelftestResult:
    """Every run, the scenarios used, and per bug the run that caught it (or None)."""

    seed: int
    usable: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)  # scenario -> why (its baseline verdict)
    runs: list[SelftestRun] = field(default_factory=list)
    caught: dict[str, SelftestRun | None] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)
    noise: list[str] = field(default_factory=list)  # failures the unpatched backend showed too (not counted)
    elapsed_s: float = 0.0

    @property
    def score(self) -> float:
        return sum(1 for r in self.caught.values() if r is not None) / len(self.caught) if self.caught else 0.0

    def to_dict(self) -> dict:
        return {"seed": self.seed, "score": self.score, "elapsed_s": round(self.elapsed_s, 1),
                "usable": self.usable, "excluded": self.excluded, "noise": self.noise,
                "caught": {b: (asdict(r) if r else None) for b, r in self.caught.items()},
                "runs": [asdict(r) for r in self.runs]}


def _failed_invariants(run_dir: Path) -> tuple[str, ...]:
    """The invariants that failed beyond what the scenario declares it expects (``expect:``, when met)."""
    try:
        data = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    failed = tuple(i["name"] for i in data.get("invariants", []) if i.get("status") == "fail")
    exp = data.get("expectation") or {}
    if exp.get("met"):  # a scenario that expects a failure and got exactly it (exit 0, "as expected")
        allowed = {*exp.get("invariant", ()), *exp.get("may_also_fail", ())}
        failed = tuple(name for name in failed if name not in allowed)
    return failed


def _clean(run: SelftestRun) -> bool:
    """No invariant failed and the run ran: a pass, or only a threshold (a latency on a loaded machine) missed."""
    return run.exit_code in (EXIT_PASS, EXIT_THRESHOLD) and not run.failed


def run_one(root: Path, scenario: Path, run_dir: Path, *, seed: int, bug: str | None,
            duration_s: float | None = None) -> SelftestRun:
    """``oversold run`` of ``scenario`` with the backend copy under ``root``; its exit and failed invariants."""
    argv = [sys.executable, "-m", "oversold.cli", "run", str(scenario.resolve()), "--seed", str(seed),
            "--out", str(run_dir.resolve()), "-q"]
    if duration_s is not None:
        argv += ["--duration", str(duration_s)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root.resolve())] + (
        [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    # the log goes beside the run directory: `oversold run` refuses an --out that is not empty
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(run_dir.parent / f"{run_dir.name}.log", "wb") as log:
        try:
            # cwd = the copy: `python -m reference_backend` finds the working directory's package first
            code = subprocess.run(argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=RUN_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            code = -1
    return SelftestRun(bug, scenario.stem, code, _failed_invariants(run_dir), round(time.monotonic() - started, 1),
                       str(run_dir))


def default_scenarios(folder: Path) -> list[Path]:
    """The scenarios of ``folder`` the selftest uses when given none: those that stand up by themselves
    on one Redis with the process driver and swarm at most ``DEFAULT_MAX_SWARM_S`` (Docker, Sentinel and
    cluster topologies need an engine or several Redis processes, a soak takes minutes per run)."""
    out = []
    for path in sorted(folder.glob("*.yaml")):
        s = load_scenario(path)
        if s.chaos.driver == "process" and s.redis.topology == "single" and s.swarm.duration_s <= DEFAULT_MAX_SWARM_S:
            out.append(path)
    return out


def run_selftest(scenarios: Sequence[Path], bugs: Sequence[PlantedBug], out: Path, *, seed: int,
                 every: bool = False, duration_s: float | None = None,
                 progress: Callable[[str], None] = lambda _m: None) -> SelftestResult:
    """The baseline, then every bug against the usable scenarios; see the module docstring."""
    for path in scenarios:
        load_scenario(path)  # bad input now, before any run
    names = [p.stem for p in scenarios]
    if len(set(names)) != len(names):
        raise BadInput(f"selftest: two scenarios share a name: {', '.join(names)}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        # every run inside would be refused (a run never overwrites another), and score nothing
        raise BadInput(f"selftest: --out {out} already exists and is not empty; give a new directory")
    started = time.monotonic()
    result = SelftestResult(seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    base_root = plant(None, out / "backends" / "baseline")
    for path in scenarios:
        run = run_one(base_root, path, out / "baseline" / path.stem, seed=seed, bug=None, duration_s=duration_s)
        result.runs.append(run)
        if _clean(run):
            result.usable.append(path.stem)
        else:
            result.excluded[path.stem] = f"exit {run.exit_code} on the unpatched backend" + (
                f" ({', '.join(run.failed)})" if run.failed else "")
        progress(f"baseline {path.stem}: exit {run.exit_code} in {run.elapsed_s:.0f}s")
    by_name = {p.stem: p for p in scenarios}
    for bug in bugs:
        result.titles[bug.name] = bug.title
        root = plant(bug, out / "backends" / bug.name)
        order = [s for s in bug.scenarios if s in result.usable] + [s for s in result.usable if s not in bug.scenarios]
        result.caught[bug.name] = None
        for name in order:
            run = run_one(root, by_name[name], out / bug.name / name, seed=seed, bug=bug.name, duration_s=duration_s)
            result.runs.append(run)
            progress(f"{bug.name} x {name}: exit {run.exit_code}"
                     + (f", failed {', '.join(run.failed)}" if run.failed else "") + f" ({run.elapsed_s:.0f}s)")
            if run.exit_code == EXIT_FAIL and result.caught[bug.name] is None:
                # a catch counts only if the unpatched backend passes this scenario and seed again:
                # a scenario that failed by chance must not score a bug it never saw
                again = run_one(base_root, by_name[name], out / "baseline-again" / f"{bug.name}-{name}", seed=seed,
                                bug=None, duration_s=duration_s)
                result.runs.append(again)
                if not _clean(again):
                    result.noise.append(f"{bug.name} x {name}: the unpatched backend failed it too "
                                        f"(exit {again.exit_code}{', ' + ', '.join(again.failed) if again.failed else ''})")
                    progress(f"  not counted: {result.noise[-1]}")
                    continue
                result.caught[bug.name] = run
                if not every:
                    break
    result.elapsed_s = time.monotonic() - started
    return result


def format_table(result: SelftestResult) -> str:
    """The markdown table: planted bug -> caught by which scenario and invariants; then score and runtime."""
    lines = ["| planted bug | what it does | caught by (scenario) | invariants that failed | run |",
             "| --- | --- | --- | --- | --- |"]
    for bug, run in result.caught.items():
        tried = {r.scenario for r in result.runs if r.bug == bug}
        if run is None:
            lines.append(f"| `{bug}` | {result.titles.get(bug, '')} | **not caught** ({len(tried)} scenarios tried) "
                         f"| - | - |")
        else:
            lines.append(f"| `{bug}` | {result.titles.get(bug, '')} | {run.scenario} | {', '.join(run.failed)} "
                         f"| {run.elapsed_s:.0f}s |")
    caught = sum(1 for r in result.caught.values() if r is not None)
    lines.append("")
    lines.append(f"score {caught}/{len(result.caught)} = {result.score:.2f}; seed {result.seed}; "
                 f"{len(result.runs)} runs in {result.elapsed_s:.0f}s; scenarios used: {', '.join(result.usable)}")
    for name, why in result.excluded.items():
        lines.append(f"excluded {name}: {why}")
    for line in result.noise:
        lines.append(f"not counted: {line}")
    return "\n".join(lines)
