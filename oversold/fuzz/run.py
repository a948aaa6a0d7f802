"""Fuzz a backend against its OpenAPI document with schemathesis: every phase, every check.

The contract document is what users implement, so it must say exactly what the
backend does. ``run_fuzz`` runs the schemathesis CLI twice, each time from a
config file it writes into the output directory (``fuzz.toml``,
``stateful.toml``; ``commands.txt`` has the command lines, so the same fuzz
can be run again without oversold):

1. ``examples,coverage,fuzzing``: every operation, schema-valid and
   schema-violating requests, each response checked by every check;
2. ``stateful``: chains of requests along the document's links (an order to
   its read, pay, cancel and refund).

Before each pass it creates (or resets) one sale per strategy through the
contract and places four orders in the first one (two paid); half of the
requests under a sale go to those sales and orders (schemathesis
dictionaries), so they reach the logic behind a 404.
The admin token goes to schemathesis through ``$OVERSOLD_ADMIN_TOKEN``, never
through the config file or the command line.

Usage::

    result = run_fuzz(FuzzOptions("http://127.0.0.1:8000", admin_token="secret"), out=Path("fuzz"))
    print(result.summary())
    result.ok   # True: no check failed, no warning, every phase ran
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from oversold.adapters.contract_client import ContractClient
from oversold.errors import BadInput, StandUpError, TransportError

ADMIN_TOKEN_ENV = "OVERSOLD_ADMIN_TOKEN"
HOOKS = Path(__file__).with_name("hooks.py")  # loaded by schemathesis from its path, not imported
PASSES = (("fuzz", "examples,coverage,fuzzing"), ("stateful", "stateful"))
DEFAULT_STRATEGIES = ("pre_deduct", "order_deduct", "payment_deduct")
# Statuses that pass a check although the request's data was (in)valid, and why:
# 409 a state conflict (sold out, already paid...); 413 the 16 KiB body limit, which
# JSON Schema cannot state; 422 an Idempotency-Key used before. Each one's schema pins
# its error code, so any other answer under that status still fails the response checks.
POSITIVE_OK = ("2xx", "401", "404", "409", "413", "422")
NEGATIVE_OK = ("400", "401", "404", "405", "413", "415", "422")


@dataclass(frozen=True)
class FuzzOptions:
    """What to fuzz and how hard; ``strategies`` name the sales made first (``+async``: async orders).

    Usage::

        FuzzOptions("http://127.0.0.1:8000", "secret", document="openapi.yaml", seed=3, max_examples=200,
                    strategies=("pre_deduct", "pre_deduct+async"))
    """

    base_url: str
    admin_token: str
    document: str | None = None  # URL or file; default: the backend's own GET /v1/openapi.yaml
    seed: int = 1
    max_examples: int = 60
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES

    def document_location(self) -> str:
        return self.document or self.base_url.rstrip("/") + "/v1/openapi.yaml"


@dataclass(frozen=True)
class PassResult:
    """One schemathesis run: its command line, exit code, JSON report and the statuses it was answered."""

    name: str
    argv: tuple[str, ...]
    exit_code: int
    report: dict[str, Any]
    statuses: Counter[tuple[str, str, int]] = field(default_factory=Counter)  # (method, path kind, status)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return list(self.report.get("failures") or []) + list(self.report.get("errors") or [])

    @property
    def warnings(self) -> dict[str, list[str]]:
        return {name: items for name, items in (self.report.get("warnings") or {}).items() if items}

    @property
    def unreached(self) -> list[str]:
        """Operations that never accepted a request in this pass (stuck at 401, 404, 400...)."""
        rates = self.report.get("valid_rates") or {}
        return sorted(op for op, phases in rates.items() if not any(p.get("accepted") for p in phases.values()))


@dataclass(frozen=True)
class FuzzResult:
    """Both passes; ``ok`` only when neither found a failure or a warning.

    Usage::

        result = run_fuzz(options, Path("fuzz"))
        sys.exit(0 if result.ok else 1)
    """

    passes: tuple[PassResult, ...]
    out: Path

    @property
    def ok(self) -> bool:
        return all(p.exit_code == 0 and not p.failures and not p.warnings for p in self.passes)

    def summary(self) -> str:
        lines = []
        for p in self.passes:
            cases = (p.report.get("test_cases") or {}).get("generated", 0)
            phases = ", ".join(f"{name} {v['status']}" for name, v in (p.report.get("phases") or {}).items())
            lines.append(f"{p.name}: exit {p.exit_code}, {cases} test cases ({phases})")
            lines += [f"  FAILED {f.get('code', '')} {f.get('title')}: {f.get('count')} "
                      f"({', '.join(f.get('operations') or [])})" for f in p.failures]
            lines += [f"  WARNING {name}: {', '.join(items)}" for name, items in p.warnings.items()]
        flows = self.passes[-1].statuses
        walked = {kind: sum(n for (_, k, s), n in flows.items() if k == kind and 200 <= s < 300)
                  for kind in ("order", "read", "pay", "cancel", "refund")}
        lines.append("stateful, answered 2xx: " + ", ".join(f"{kind} {n}" for kind, n in walked.items()))
        lines.append(f"{'contract holds' if self.ok else 'CONTRACT MISMATCH'}; reports in {self.out}")
        return "\n".join(lines)


def sale_bodies(strategies: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Sale id -> body of the sales a fuzz starts from; bad names are ``BadInput``."""
    sales = {}
    for entry in strategies:
        strategy, _, flag = entry.partition("+")
        if not re.fullmatch(r"[a-z_]{1,40}", strategy) or flag not in ("", "async"):
            raise BadInput(f"--strategies: {entry!r} is not a strategy name (optionally with +async)")
        # holds outlive a pass; the stock outlasts the fuzzer's largest orders for a while
        body: dict[str, Any] = {"stock": 10**9, "hold_ttl_ms": 600_000, "strategy": strategy}
        if flag:
            body["async_orders"] = True
        sales[f"fz-{strategy}" + ("-async" if flag else "")] = body
    if not sales:
        raise BadInput("--strategies: name at least one strategy")
    return sales


@dataclass(frozen=True)
class Prepared:
    """The sales a pass starts from, and orders of the first one (two held, two paid)."""

    sales: tuple[str, ...]
    orders: tuple[str, ...]


def prepare(client: ContractClient, sales: dict[str, dict[str, Any]]) -> Prepared:
    """Create or reset each sale and place the first sale's orders, through the contract.

    Any refusal stops the fuzz (``StandUpError``): a fuzz from a state it did not
    mean to start from would report the wrong things.
    """
    first = next(iter(sales))
    for sale_id, body in sales.items():
        _expect(client, "PUT", f"/v1/sales/{sale_id}", body, (200,), admin=True)
    orders = []
    for i in range(4):
        order = _expect(client, "POST", f"/v1/sales/{first}/orders", {"user_id": f"fz-{i}", "qty": 1}, (201,))
        orders.append(order["order_id"])
    for order_id in orders[2:]:
        _expect(client, "POST", f"/v1/sales/{first}/orders/{order_id}/pay", None, (200,))
    return Prepared(tuple(sales), tuple(orders))


def _expect(client: ContractClient, method: str, path: str, body: Any, statuses: tuple[int, ...],
            admin: bool = False) -> dict[str, Any]:
    try:
        status, answer = client.request(method, path, body, admin=admin)
    except TransportError as e:
        raise StandUpError(f"fuzz: {method} {path}: {e}") from e
    if status not in statuses:
        why = " (the first strategy must take orders at once: 201)" if method == "POST" else ""
        raise StandUpError(f"fuzz: making the data the fuzz starts from, {method} {path} {json.dumps(body)} "
                           f"answered {status}: {answer}{why}")
    return answer


def config_text(options: FuzzOptions, prepared: Prepared) -> str:
    """schemathesis.toml of a pass: every check strict, warnings fatal, the admin token from the environment."""
    q = json.dumps  # a JSON string is a TOML basic string
    return "\n".join([
        "# written by `oversold fuzz` (docs/ci.md, \"oversold fuzz\"); commands.txt beside it runs it",
        f"seed = {options.seed}",
        "workers = 1",
        f"hooks = {q(str(HOOKS))}",
        "",
        "# a run starts from nothing an earlier run left (found examples, crashes to replay)",
        "[cache]",
        "enabled = false",
        "[generation]",
        f"max-examples = {options.max_examples}",
        'database = ":memory:"',
        "",
        "[checks.positive_data_acceptance]",
        f"expected-statuses = {q(list(POSITIVE_OK))}",
        "[checks.negative_data_rejection]",
        f"expected-statuses = {q(list(NEGATIVE_OK))}",
        "",
        "[auth.openapi.admin]",
        f"bearer = {q('${' + ADMIN_TOKEN_ENV + '}')}",
        "",
        "# any warning (e.g. an operation never reached past a 404) fails the run",
        "[warnings]",
        "fail-on = true",
        "",
        "# the stateful phase follows the document's own links only",
        "[phases.stateful.inference]",
        "algorithms = []",
        "",
        "# the sales and orders made before this pass (oversold.fuzz.run.prepare)",
        "[dictionaries.sales]",
        f"values = {q(list(prepared.sales))}",
        "[dictionaries.order_sale]",
        f"values = {q(list(prepared.sales[:1]))}",
        "[dictionaries.orders]",
        f"values = {q(list(prepared.orders))}",
        "",
        "# half of the requests under a sale go to those sales and orders",
        "[[operations]]",
        f"include-path-regex = {q('^/v1/sales/[{]sale_id[}]/[a-z_]+$')}",
        'parameters = { "path.sale_id" = { dictionary = "sales", probability = 0.5 } }',
        "[[operations]]",
        f"include-path-regex = {q('^/v1/sales/[{]sale_id[}]/orders/[{]order_id[}]')}",
        'parameters = { "path.sale_id" = { dictionary = "order_sale", probability = 0.5 }, '
        '"path.order_id" = { dictionary = "orders", probability = 0.5 } }',
        "",
        "# a sale reset takes no id seen in answers: it would wipe the prepared sales mid-pass",
        "[[operations]]",
        f"include-path-regex = {q('^/v1/sales/[{]sale_id[}]$')}",
        "include-method = \"PUT\"",
        "phases.coverage.extra-data-sources.responses = false",
        "phases.fuzzing.extra-data-sources.responses = false",
        "",
    ])


def command(options: FuzzOptions, name: str, phases: str, config: Path, out: Path) -> list[str]:
    """The schemathesis command line of one pass."""
    return [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
            options.document_location(), "--url", options.base_url, "--checks", "all", "--phases", phases,
            "--no-color", "--report", "json,har", "--report-dir", str(out / name)]


def run_fuzz(options: FuzzOptions, out: Path, stream: TextIO | None = None) -> FuzzResult:
    """Both passes against ``options.base_url``; schemathesis's output goes to ``<out>/<pass>.log`` (and ``stream``)."""
    try:
        import schemathesis  # noqa: F401  (only to say clearly when it is missing)
    except ImportError:
        raise StandUpError("fuzz: schemathesis is not installed (pip install 'schemathesis>=4,<5')") from None
    sales = sale_bodies(options.strategies)
    if options.document and "://" not in options.document and not Path(options.document).is_file():
        raise BadInput(f"--document: no file {options.document}")
    try:
        client = ContractClient(options.base_url, admin_token=options.admin_token, timeout=10)
    except ValueError as e:
        raise BadInput(f"fuzz: {e}") from None
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **{ADMIN_TOKEN_ENV: options.admin_token})
    results = []
    notes = [f"# with ${ADMIN_TOKEN_ENV} set, each pass right after making the sales and orders its config names"]
    try:
        for name, phases in PASSES:
            prepared = prepare(client, sales)  # again before each pass: the first one spends and cancels
            config = out / f"{name}.toml"
            config.write_text(config_text(options, prepared))
            argv = command(options, name, phases, config, out)
            notes.append(" ".join(argv))
            (out / "commands.txt").write_text("\n".join(notes) + "\n")
            code = _run(argv, out / f"{name}.log", env, stream)
            report = _load_report(out / name)
            if code not in (0, 1) or not report:
                raise StandUpError(f"fuzz: schemathesis could not run the {name} pass (exit {code}); "
                                   f"see {out / f'{name}.log'}")
            results.append(PassResult(name, tuple(argv), code, report, _statuses(out / name)))
    finally:
        client.close()
    return FuzzResult(tuple(results), out)


def _run(argv: list[str], log: Path, env: dict[str, str], stream: TextIO | None) -> int:
    with log.open("w") as f, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                              text=True, env=env) as child:
        assert child.stdout is not None
        try:
            for line in child.stdout:
                f.write(line)
                if stream is not None:
                    stream.write(line)
                    stream.flush()
        except BaseException:  # Ctrl-C or SIGTERM: stop the run we started, then go on unwinding
            child.terminate()
            raise
        return child.wait()


def _load_report(folder: Path) -> dict[str, Any]:
    found = sorted(folder.glob("json-*.json"))
    return json.loads(found[-1].read_text()) if found else {}


def _statuses(folder: Path) -> Counter[tuple[str, str, int]]:
    """How often each (method, kind of path, status) was answered, from the pass's HAR file."""
    found = sorted(folder.glob("har-*.json"))
    seen: Counter[tuple[str, str, int]] = Counter()
    if not found:
        return seen
    for entry in json.loads(found[-1].read_text())["log"]["entries"]:
        method, url = entry["request"]["method"], entry["request"]["url"]
        seen[(method, path_kind(method, url), int(entry["response"]["status"]))] += 1
    return seen


def path_kind(method: str, url: str) -> str:
    """Which order step a request was: order, read, pay, cancel, refund; else ``other``."""
    path = url.split("?", 1)[0].rstrip("/")
    parts = path.split("/v1/sales/", 1)[-1].split("/")
    if len(parts) == 2 and parts[1] == "orders" and method == "POST":
        return "order"
    if len(parts) == 3 and parts[1] == "orders" and method == "GET":
        return "read"
    if len(parts) == 4 and parts[1] == "orders" and method == "POST" and parts[3] in ("pay", "cancel", "refund"):
        return parts[3]
    return "other"
