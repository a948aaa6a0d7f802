"""Planted bugs (oversold selftest): every patch applies to today's backend; the score and table; clock files."""

from __future__ import annotations

from pathlib import Path

import pytest

from oversold.chaos.clock_driver import ClockDriver, read_offset
from oversold.errors import FaultSpecError
from oversold.model.fault import Fault
from oversold.orchestrate.planted import BUGS, BUGS_BY_NAME, Patch, PlantedBug, PlantError, plant
from oversold.orchestrate.selftest import SelftestResult, SelftestRun, format_table
from reference_backend import clock


def test_every_planted_bug_applies_once_and_changes_the_backend(tmp_path: Path) -> None:
    assert len(BUGS) >= 12 and len(BUGS_BY_NAME) == len(BUGS)
    clean = plant(None, tmp_path / "clean") / "reference_backend"
    for bug in BUGS:
        root = plant(bug, tmp_path / bug.name) / "reference_backend"
        for patch in bug.patches:
            text = (root / patch.path).read_text(encoding="utf-8")
            assert patch.new in text, (bug.name, patch.path)
            assert text != (clean / patch.path).read_text(encoding="utf-8"), (bug.name, patch.path)
    # the copy of the unpatched backend is the backend
    assert (clean / "lua" / "pre_deduct_pay.lua").read_text() == \
        (Path(clock.__file__).parent / "lua" / "pre_deduct_pay.lua").read_text()


def test_a_patch_that_no_longer_applies_is_an_error_naming_the_bug(tmp_path: Path) -> None:
    gone = PlantedBug("gone", "t", "s", (Patch("lua/reap.lua", "this text is not there", "x"),), ())
    with pytest.raises(PlantError, match=r"planted bug gone: reference_backend/lua/reap.lua has the patched text "
                                         r"0 times"):
        plant(gone, tmp_path)
    missing = PlantedBug("nofile", "t", "s", (Patch("lua/nope.lua", "a", "b"),), ())
    with pytest.raises(PlantError, match="planted bug nofile: no file reference_backend/lua/nope.lua"):
        plant(missing, tmp_path)


def test_score_and_table_say_what_caught_what() -> None:
    r = SelftestResult(seed=3, usable=["flash_sale", "late_payers"], excluded={"hoarding_attack": "exit 3"})
    hit = SelftestRun("a", "late_payers", 1, ("conservation", "no_oversell"), 21.0, "/x")
    r.runs = [SelftestRun(None, "flash_sale", 0, (), 20.0, "/b"), hit,
              SelftestRun("b", "flash_sale", 0, (), 20.0, "/y"), SelftestRun("b", "late_payers", 0, (), 20.0, "/z")]
    r.caught = {"a": hit, "b": None}
    r.titles = {"a": "bug a", "b": "bug b"}
    assert r.score == 0.5
    table = format_table(r)
    assert "| `a` | bug a | late_payers | conservation, no_oversell | 21s |" in table
    assert "| `b` | bug b | **not caught** (2 scenarios tried) | - | - |" in table
    assert "score 1/2 = 0.50; seed 3" in table and "excluded hoarding_attack: exit 3" in table
    assert r.to_dict()["caught"]["b"] is None


def test_the_clock_driver_skews_one_node_and_heals_it(tmp_path: Path) -> None:
    d = ClockDriver()
    files = [tmp_path / "clock" / f"node{i}.offset_ms" for i in (1, 2)]
    for f in files:
        d.register("clock", f)
    assert d.roles() == {"clock": 2} and [read_offset(f) for f in files] == [0, 0]
    inj = d.inject(Fault("clock_skew", "clock", (1,), params={"offset_ms": -90_000}))
    assert [read_offset(f) for f in files] == [0, -90_000]
    assert clock.offset_ms(str(files[1])) == -90_000  # what the node reads
    assert inj.hits[0].ident == str(files[1])
    d.heal(inj)
    d.heal(inj)  # idempotent
    assert [read_offset(f) for f in files] == [0, 0]
    assert clock.offset_ms(str(files[1])) == 0
    with pytest.raises(FaultSpecError, match=r"clock_skew takes params \{offset_ms: integer\}"):
        d.inject(Fault("clock_skew", "clock", (0,), params={"offset_ms": "10m"}))
    with pytest.raises(FaultSpecError, match="unknown action 'kill'"):
        d.inject(Fault("kill", "clock", (0,)))


def test_the_node_clock_reads_its_file_again_when_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c"
    monkeypatch.setenv(clock.CLOCK_FILE_ENV, str(f))
    assert clock.offset_ms() == 0  # no file yet
    f.write_text("5000\n")
    assert clock.offset_ms() == 5000
    f.write_text("-7")
    import os
    os.utime(f, ns=(1, 1))  # a new mtime even within the file system's timestamp granularity
    assert clock.offset_ms() == -7
    f.write_text("garbage")
    os.utime(f, ns=(2, 2))
    assert clock.offset_ms() == 0


def test_selftest_refuses_an_output_directory_that_is_not_empty(tmp_path: Path) -> None:
    from paths import REPO

    from oversold.errors import BadInput
    from oversold.orchestrate.selftest import run_selftest

    (tmp_path / "old-run").mkdir()  # every `oversold run` inside would be refused and score nothing
    with pytest.raises(BadInput, match="already exists and is not empty"):
        run_selftest([REPO / "scenarios" / "flash_sale.yaml"], BUGS[:1], tmp_path, seed=1)


def test_the_default_scenarios_stand_up_alone_and_are_short() -> None:
    from paths import REPO

    from oversold.orchestrate.selftest import default_scenarios

    names = {p.stem for p in default_scenarios(REPO / "scenarios")}
    assert {"flash_sale", "worker_kill", "clock_skew", "late_cancel"} <= names
    assert not names & {"soak", "redis_failover", "redis_docker", "hot_sku_cluster", "cluster_failover"}, names


def test_a_baseline_that_fails_as_its_scenario_expects_is_clean_and_other_failures_still_count(tmp_path: Path) -> None:
    import json

    from oversold.orchestrate.selftest import _failed_invariants

    def results(met: bool, failed: list[str]) -> Path:
        run = tmp_path / f"run-{met}-{'-'.join(failed)}"
        run.mkdir()
        body = {"invariants": [{"name": n, "status": "fail"} for n in failed] + [{"name": "no_oversell", "status": "pass"}],
                "expectation": {"verdict": "fail", "invariant": ["sells_out"], "may_also_fail": [], "met": met}}
        (run / "results.json").write_text(json.dumps(body))
        return run

    assert _failed_invariants(results(True, ["sells_out"])) == ()  # hoarding_attack on the correct backend
    assert _failed_invariants(results(False, ["sells_out", "conservation"])) == ("sells_out", "conservation")
    assert _failed_invariants(results(True, ["sells_out", "single_payment"])) == ("single_payment",)
