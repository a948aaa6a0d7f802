"""The contract holds under a schema fuzzer: schemathesis, every phase and every check, against a real node."""

from __future__ import annotations

import yaml
from paths import REPO

from oversold.cli import main
from oversold.fuzz import FuzzOptions, run_fuzz
from oversold.infra.procs import free_port
from oversold.orchestrate.nodes import BackendNode

DOC_PATH = REPO / "reference_backend" / "openapi.yaml"
DOC = yaml.safe_load(DOC_PATH.read_text())
OPERATIONS = {f"{method.upper()} {path}" for path, item in DOC["paths"].items() for method in item
              if method in ("get", "put", "post")}
# every strategy of the reference backend, and asynchronous orders: the node below has a warehouse ledger
STRATEGIES = ("pre_deduct", "order_deduct", "payment_deduct", "pre_deduct_ledger", "naive", "pre_deduct+async")


def test_the_backend_does_what_its_document_says(redis_url, tmp_path, admin_token):
    node = BackendNode.start(redis_url, name="fuzzed", admin_token=admin_token, log_dir=tmp_path,
                             extra_args=("--ledger", str(tmp_path / "ledger.sqlite3")))
    try:
        # the document as a file (the node serves the same, tests/integration/test_openapi.py): loaded from the node,
        # schemathesis would leave out the operation that served it
        options = FuzzOptions(node.url, admin_token, document=str(DOC_PATH), seed=1, max_examples=60,
                              strategies=STRATEGIES)
        result = run_fuzz(options, tmp_path / "fuzz")
    finally:
        node.stop()
    summary = result.summary()
    print(summary)
    fuzz, stateful = result.passes
    assert result.ok, summary  # no failure of any check, no warning, both passes exit 0
    for p, phases in ((fuzz, ("examples", "coverage", "fuzzing")), (stateful, ("stateful",))):
        assert "--checks all" in " ".join(p.argv)
        assert {name: p.report["phases"][name]["status"] for name in phases} == dict.fromkeys(phases, "success")
    # every operation took at least one request in full (the token reached the admin ones; no 404 wall)
    assert fuzz.report["operations"]["tested"] == fuzz.report["operations"]["total"] == len(OPERATIONS)
    assert set(fuzz.report["valid_rates"]) == OPERATIONS
    assert not fuzz.unreached, fuzz.unreached
    assert fuzz.report["test_cases"]["generated"] > 1000
    # the stateful pass walked the links: orders placed, then read, paid, cancelled and refunded
    for kind in ("order", "read", "pay", "cancel", "refund"):
        assert any(k == kind and 200 <= s < 300 for (_, k, s) in stateful.statuses), (kind, summary)
    # and the admin operations were also tried without the token, and refused
    assert any(s == 401 for (_, _, s) in fuzz.statuses)
    # the token went through the environment only: no config, log or report holds it
    assert not [f for f in result.out.rglob("*") if f.is_file() and admin_token in f.read_text(errors="replace")]


def test_cli_exits_5_when_the_sales_cannot_be_made(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("OVERSOLD_ADMIN_TOKEN", "secret")
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens: the sales cannot be made
    assert main(["fuzz", nobody, "--out", str(tmp_path / "d")]) == 5
    assert "could not run the system" in capsys.readouterr().err
