"""The ``oversold`` command. Thin: parses flags, calls the library, picks the exit status.

Exit status: 0 every invariant and threshold holds; 1 an invariant is violated;
2 inconclusive; 3 a threshold failed (and every invariant holds); 4 bad input;
5 the harness could not stand the system up; 6 an unexpected pass (the
scenario declares a failure with ``expect:`` and every invariant held; the
declared failure itself exits 0, any other failure 1). ``bench`` exits 0 once the
benchmark ran, whatever the strategies' verdicts (they are a column), 4 on bad
input, 5 when a run could not stand the system up. ``fuzz`` exits 0 when the
backend does what its document says, 1 on any mismatch, 4 on bad input, 5
when the fuzz could not run. ``selftest`` exits 0 when the mutation score
reaches ``--min-score``, 1 below it, 4 on bad input.

Usage::

    oversold run scenarios/flash_sale.yaml --strategy naive --out runs/naive
    OVERSOLD_ADMIN_TOKEN=secret oversold run scenarios/flash_sale.yaml --host http://127.0.0.1:8000
    oversold run scenarios/flash_sale.yaml --host http://127.0.0.1:9000 --adapter mypkg.adapters:MyShop
    oversold check runs/naive
    oversold check runs/naive --thresholds strict.yaml --out runs/naive-strict
    oversold bench scenarios/flash_sale.yaml --strategies pre_deduct,naive --repeat 3
    OVERSOLD_ADMIN_TOKEN=secret oversold fuzz http://127.0.0.1:8000
    oversold serve scenarios/flash_sale.yaml        # Redis + nodes for plain locust -f, until Ctrl-C
    oversold selftest --bugs no_user_limit scenarios/scalper_rush.yaml
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Sequence

from .errors import BadInput, HarnessError, OversoldError, StandUpError
from .model.exit_codes import EXIT_BAD_INPUT, EXIT_FAIL, EXIT_PASS, EXIT_STAND_UP
from .model.scenario import STRATEGIES

ADMIN_TOKEN_ENV = "OVERSOLD_ADMIN_TOKEN"  # as oversold.orchestrate.run and the reference backend read it



class _ArgParser(argparse.ArgumentParser):
    """argparse, but a usage error is our exit 4 (bad input), not argparse's 2 (inconclusive)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"oversold: error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    p = _ArgParser(prog="oversold", description="Prove a flash-sale backend never oversells.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_ArgParser)

    r = sub.add_parser("run", help="run a scenario end to end and check it")
    r.add_argument("scenario", type=Path, help="scenario YAML (see scenarios/flash_sale.yaml)")
    r.add_argument("--strategy", help="deduction strategy of the reference backend, one of "
                                      f"{', '.join(STRATEGIES)} (overrides sale.strategy)")
    r.add_argument("--out", type=Path, help="run directory (default runs/<name>-<strategy>-<time>)")
    r.add_argument("--seed", type=int, help="seed of the swarm's random choices (overrides seed)")
    r.add_argument("--redis-url", help="use this Redis instead of starting one (overrides redis.url)")
    r.add_argument("--host", metavar="URL",
                   help="test your own backend at this http:// URL (the contract, or --adapter); no reference "
                        "backend and no Redis are started (overrides backend.url; admin token from "
                        "$OVERSOLD_ADMIN_TOKEN)")
    r.add_argument("--adapter", metavar="MODULE:CLASS",
                   help="speak to a backend with another API than the contract through this "
                        "oversold.adapters.Adapter subclass (overrides backend.adapter; see docs/swarm.md)")
    r.add_argument("--duration", type=float, help="upper bound of the swarm in seconds (overrides swarm.duration_s)")
    r.add_argument("-q", "--quiet", action="store_true", help="print only the verdict summary")

    c = sub.add_parser("check", help="check a saved run directory again")
    c.add_argument("run_dir", type=Path)
    c.add_argument("--thresholds", type=Path, metavar="FILE",
                   help="judge the run by the thresholds: mapping of this YAML file (a scenario file will do) "
                        "instead of the run's own; needs --out")
    c.add_argument("--out", type=Path, metavar="DIR",
                   help="write results.json, junit.xml, report.html and scenario.yaml here, not into RUN_DIR")

    s = sub.add_parser("serve", help="start Redis and reference backend nodes for plain `locust -f` use, "
                                     "until Ctrl-C or SIGTERM")
    s.add_argument("scenario", type=Path, nargs="?",
                   help="scenario YAML: the sale, its strategy and the number of nodes (default: every default)")
    s.add_argument("--strategy", help=f"deduction strategy, one of {', '.join(STRATEGIES)} (overrides sale.strategy)")
    s.add_argument("--dir", type=Path, metavar="DIR",
                   help="where serve.json, admin-token, scenario.yaml and logs/ go (default runs/serve-<time>)")

    b = sub.add_parser("bench", help="run one scenario against several strategies and compare them "
                                     "(exit 0 when the benchmark ran, whatever the verdicts)")
    b.add_argument("scenario", type=Path)
    b.add_argument("--strategies", default=None,
                   help="comma-separated strategies of the reference backend (default: all of them)")
    b.add_argument("--repeat", type=int, default=1, help="runs per strategy; cells show median (min-max)")
    b.add_argument("--out", type=Path, help="output directory (default runs/bench-<name>-<time>)")
    b.add_argument("--seed", type=int, help="seed of every run (overrides seed)")
    b.add_argument("--duration", type=float, help="upper bound of each swarm in seconds (overrides swarm.duration_s)")
    b.add_argument("-q", "--quiet", action="store_true", help="print only the table")

    f = sub.add_parser("fuzz", help="fuzz a backend against its OpenAPI document with schemathesis, every phase "
                                    "and check (admin token from $OVERSOLD_ADMIN_TOKEN; see docs/ci.md)")
    f.add_argument("url", help="the backend's base URL, http://host:port")
    f.add_argument("--document", metavar="FILE_OR_URL", help="the OpenAPI document (default URL/v1/openapi.yaml)")
    f.add_argument("--seed", type=int, default=1)
    f.add_argument("--max-examples", type=int, default=60, help="test cases per operation and phase (default 60)")
    f.add_argument("--strategies", default="pre_deduct,order_deduct,payment_deduct",
                   help="one sale per strategy is made first (NAME+async: with async orders); the first one "
                        "must place orders at once")
    f.add_argument("--out", type=Path, help="reports and schemathesis configs (default runs/fuzz-<time>)")

    t = sub.add_parser("selftest", help="plant bugs into the reference backend and report which scenarios "
                                        "catch them (exit 0 when the score reaches --min-score)")
    t.add_argument("scenarios", type=Path, nargs="*",
                   help="scenario YAMLs (default: scenarios/*.yaml of a process-driven single Redis "
                        "that swarm at most 60 s)")
    t.add_argument("--bugs", default=None, help="comma-separated planted bugs (default: all; --list shows them)")
    t.add_argument("--list", action="store_true", help="list the planted bugs and exit")
    t.add_argument("--seed", type=int, default=1, help="seed of every run (default 1)")
    t.add_argument("--every", action="store_true", help="run every scenario against every bug (default: stop "
                                                        "at the first that catches it)")
    t.add_argument("--duration", type=float, help="upper bound of each swarm in seconds")
    t.add_argument("--min-score", type=float, default=0.0, help="exit 1 below this score (0..1)")
    t.add_argument("--out", type=Path, help="output directory (default runs/selftest-<time>)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so everything started is stopped
    signal.signal(signal.SIGTERM, _raise_interrupt)
    # a shell without job control starts `oversold run ... &` with SIGINT ignored, and Python then
    # leaves it ignored: `kill -INT` would be lost and nothing stopped. Ctrl-C always unwinds here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "bench":
            return _cmd_bench(args)
        if args.command == "fuzz":
            return _cmd_fuzz(args)
        if args.command == "serve":
            return _cmd_serve(args)
        if args.command == "selftest":
            return _cmd_selftest(args)
        return _cmd_check(args)
    except KeyboardInterrupt:
        print("oversold: interrupted; everything it started has been stopped", file=sys.stderr)
        return 130
    except BadInput as e:
        print(f"oversold: bad input: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (StandUpError, HarnessError) as e:
        print(f"oversold: could not run the system: {e}", file=sys.stderr)
        return EXIT_STAND_UP
    except OversoldError as e:  # pragma: no cover - every subclass is handled above
        print(f"oversold: {e}", file=sys.stderr)
        return EXIT_STAND_UP


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _cmd_run(args: argparse.Namespace) -> int:
    from oversold.model.scenario_file import load_scenario
    from oversold.orchestrate.progress import LiveProgress
    from oversold.orchestrate.run import run_scenario
    from oversold.swarm.config import DEFAULT_ADAPTER

    scenario = load_scenario(args.scenario).with_overrides(
        strategy=args.strategy, seed=args.seed, redis_url=args.redis_url, duration_s=args.duration,
        backend_url=args.host, adapter=args.adapter,
    )
    # an adapter module in the working directory imports, as a locustfile there would
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    contract = scenario.backend.adapter in (None, DEFAULT_ADAPTER)
    if scenario.backend.url and contract and not os.environ.get(ADMIN_TOKEN_ENV):
        # only the contract's admin calls take that token; another adapter has its own way in
        print(f"oversold: note: ${ADMIN_TOKEN_ENV} is not set; the admin calls to {scenario.backend.url} "
              "(create the sale, audit) go without your backend's token", file=sys.stderr)
    label = scenario.backend_label
    out = args.out or Path("runs") / f"{scenario.name}-{label}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        # as check --out: a run's history, verdict and report are never overwritten by another run
        raise BadInput(f"--out: {out} already exists and is not empty (another run?); give a new directory")
    print(f"oversold: running {args.scenario} ({label}) into {out}", flush=True)
    # absolute: the swarm runs in another working directory and must find the run's files
    out = out.resolve()
    if args.quiet:
        result = run_scenario(scenario, out)
    else:
        # a live status line on a terminal, a plain line every few seconds in a CI log
        display = LiveProgress(sys.stdout)
        result = run_scenario(scenario, out, progress=display.say, observer=display)
    print(result.summary)
    return result.exit_code


def _cmd_serve(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from oversold.model.scenario import Scenario
    from oversold.model.scenario_file import load_scenario
    from oversold.orchestrate.serve import locust_command, stand_up_for_locust, wait_forever

    scenario = (load_scenario(args.scenario) if args.scenario else Scenario()).with_overrides(strategy=args.strategy)
    run_dir = (args.dir or Path("runs") / f"serve-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise BadInput(f"--dir: {run_dir} already exists and is not empty; give a new directory")
    if scenario.faults:
        print(f"oversold serve: the scenario's {len(scenario.faults)} fault(s) are not run (that is oversold run's "
              "job)", flush=True)
    with ExitStack() as stack:
        try:
            served = stand_up_for_locust(scenario, run_dir, stack=stack,
                                         progress=lambda m: print(f"  {m}", flush=True))
            sale = scenario.sale
            print(f"oversold serve: sale {sale.id} ({sale.strategy}, {sale.stock} units) on "
                  f"{' '.join(served.node_urls)}; redis {served.redis_url}; files in {run_dir}", flush=True)
            print("run the swarm against it (it resets the sale at each test start; Ctrl-C here stops "
                  "everything):", flush=True)
            print(f"  {locust_command(served)}", flush=True)
            wait_forever()
        except KeyboardInterrupt:
            print("oversold serve: stopping everything it started", file=sys.stderr, flush=True)
    print("oversold serve: stopped", file=sys.stderr, flush=True)
    return EXIT_PASS


def _cmd_bench(args: argparse.Namespace) -> int:
    from oversold.model.scenario_file import load_scenario
    from oversold.orchestrate.progress import LiveProgress

    from .analysis.bench_table import format_table
    from .orchestrate.bench import run_bench, write_outputs

    scenario = load_scenario(args.scenario).with_overrides(seed=args.seed, duration_s=args.duration)
    strategies = args.strategies.split(",") if args.strategies is not None else list(STRATEGIES)
    out = args.out or Path("runs") / f"bench-{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    command = "oversold " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else ""
    display = None if args.quiet else LiveProgress(sys.stdout)
    bench = run_bench(scenario, strategies, repeat=args.repeat, out=out, scenario_path=str(args.scenario),
                      progress=display.say if display else (lambda _m: None), observer=display, command=command)
    paths = write_outputs(bench, out.resolve())
    print()
    print(format_table(bench.summaries))
    print(f"\n{len(bench.rows)} runs in {bench.elapsed_s:.0f}s; " + ", ".join(str(p) for p in paths.values()))
    return EXIT_PASS  # the benchmark ran; a strategy's failed verdict is a column of the table


def _cmd_fuzz(args: argparse.Namespace) -> int:
    from oversold.fuzz import FuzzOptions, run_fuzz

    token = os.environ.get(ADMIN_TOKEN_ENV)
    if not token:
        raise BadInput(f"${ADMIN_TOKEN_ENV} is not set: the fuzz must reach the admin operations too")
    if args.max_examples < 1:
        raise BadInput(f"--max-examples: must be at least 1, got {args.max_examples}")
    options = FuzzOptions(args.url, token, document=args.document, seed=args.seed, max_examples=args.max_examples,
                          strategies=tuple(s for s in args.strategies.split(",") if s))
    out = args.out or Path("runs") / f"fuzz-{time.strftime('%Y%m%d-%H%M%S')}"
    result = run_fuzz(options, out.resolve(), stream=sys.stdout)
    print(result.summary())
    return EXIT_PASS if result.ok else EXIT_FAIL


def _cmd_selftest(args: argparse.Namespace) -> int:
    from oversold.orchestrate.planted import BUGS, BUGS_BY_NAME
    from oversold.orchestrate.run import REPO_ROOT
    from oversold.orchestrate.selftest import default_scenarios, format_table, run_selftest

    if args.list:
        for bug in BUGS:
            print(f"{bug.name:26} {bug.title}  [{bug.source}]")
        return EXIT_PASS
    names = args.bugs.split(",") if args.bugs else [b.name for b in BUGS]
    unknown = [n for n in names if n not in BUGS_BY_NAME]
    if unknown:
        raise BadInput(f"--bugs: unknown planted bug(s) {', '.join(unknown)}; known: {', '.join(BUGS_BY_NAME)}")
    if not 0.0 <= args.min_score <= 1.0:
        raise BadInput(f"--min-score: must be between 0 and 1, got {args.min_score}")
    scenarios = list(args.scenarios)
    if not scenarios:
        scenarios = default_scenarios(REPO_ROOT / "scenarios")
    if not scenarios:
        raise BadInput(f"selftest: no scenarios given and none found in {REPO_ROOT / 'scenarios'}; "
                       "pass scenario YAML files")
    out = (args.out or Path("runs") / f"selftest-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    print(f"oversold: selftest of {len(names)} planted bugs against {len(scenarios)} scenarios into {out}",
          flush=True)
    result = run_selftest(scenarios, [BUGS_BY_NAME[n] for n in names], out, seed=args.seed, every=args.every,
                          duration_s=args.duration, progress=lambda m: print("  " + m, flush=True))
    table = format_table(result)
    (out / "selftest.md").write_text(table + "\n", encoding="utf-8")
    (out / "selftest.json").write_text(json.dumps(result.to_dict(), indent=1), encoding="utf-8")
    print()
    print(table)
    return EXIT_PASS if result.score >= args.min_score else 1


def _cmd_check(args: argparse.Namespace) -> int:
    from oversold.analysis.judge import judge
    from oversold.model.history import FinalState, read_history
    from oversold.model.scenario_file import dump_scenario, load_scenario, load_thresholds

    run_dir: Path = args.run_dir
    for name in ("scenario.yaml", "history.jsonl", "final_state.json"):
        if not (run_dir / name).exists():
            raise BadInput(f"{run_dir}: not a run directory ({name} is missing)")
    scenario = load_scenario(run_dir / "scenario.yaml")
    out = run_dir if args.out is None else args.out
    elsewhere = out.resolve() != run_dir.resolve()
    if elsewhere and (out / "history.jsonl").exists():
        raise BadInput(f"--out: {out} holds another run; give a new directory")
    if args.thresholds is not None:
        if not elsewhere:
            raise BadInput("--thresholds: give --out DIR too, a directory other than RUN_DIR; the run's own "
                           "results.json, junit.xml and report.html stay as its scenario judged them")
        scenario = dataclasses.replace(scenario, thresholds=load_thresholds(args.thresholds))
    ops = read_history(run_dir / "history.jsonl")
    try:
        final = FinalState.from_dict(json.loads((run_dir / "final_state.json").read_text(encoding="utf-8")))
    except json.JSONDecodeError as e:
        raise BadInput(f"{run_dir / 'final_state.json'}: not JSON ({e.msg})") from None
    try:
        if elsewhere:
            out.mkdir(parents=True, exist_ok=True)
            (out / "scenario.yaml").write_text(dump_scenario(scenario), encoding="utf-8")  # what judged it
        # thresholds are re-evaluated and results.json, junit.xml, report.html written again
        j = judge(scenario, ops, final, run_dir=run_dir, elapsed_s=None, out_dir=out)
    except OSError as e:
        raise BadInput(f"{'--out' if elsewhere else run_dir}: cannot write the results into {out}: "
                       f"{e.strerror or e}") from None
    print(j.summary)
    if elsewhere:
        print(f"  checked again into: {out}  (results.json, junit.xml, report.html, scenario.yaml)")
    return j.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
