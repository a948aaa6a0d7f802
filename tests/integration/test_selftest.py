"""oversold selftest, short: bugs planted into a copy of the reference backend are caught by shipped scenarios.

Real runs (Redis, nodes, Locust) of `oversold run` against the planted copies.
The clock-skew test is the end-to-end one of the clock fault: the node-clock
expiry bug fails `clock_skew.yaml`, the unpatched backend passes it.
"""

from __future__ import annotations

from pathlib import Path

from paths import REPO

from oversold.orchestrate.planted import BUGS_BY_NAME
from oversold.orchestrate.selftest import format_table, run_selftest

SCENARIOS = REPO / "scenarios"


def test_planted_bugs_are_caught_and_the_baseline_passes(tmp_path: Path) -> None:
    bugs = [BUGS_BY_NAME["no_recheck_at_pay"], BUGS_BY_NAME["expired_hold_payable"]]
    result = run_selftest([SCENARIOS / "payment_storm.yaml", SCENARIOS / "late_payers.yaml"], bugs, tmp_path,
                          seed=1)
    table = format_table(result)
    assert result.usable == ["payment_storm", "late_payers"], table  # both run clean on the unpatched copy
    assert result.caught["no_recheck_at_pay"] is not None, table
    assert result.caught["no_recheck_at_pay"].scenario == "payment_storm"
    assert "no_oversell" in result.caught["no_recheck_at_pay"].failed
    assert result.caught["expired_hold_payable"] is not None, table
    assert result.caught["expired_hold_payable"].scenario == "late_payers"
    assert result.score == 1.0


def test_a_node_clock_expiry_bug_shows_under_clock_skew(tmp_path: Path) -> None:
    result = run_selftest([SCENARIOS / "clock_skew.yaml"], [BUGS_BY_NAME["ttl_node_clock"]], tmp_path, seed=2)
    table = format_table(result)
    assert result.usable == ["clock_skew"], table  # the reference backend (Redis's clock) passes
    caught = result.caught["ttl_node_clock"]
    assert caught is not None and "sells_out" in caught.failed, table


def test_every_mutant_loads_its_scripts_into_redis_and_compiles(tmp_path: Path) -> None:
    """A patch that applies can still break its file: every mutant's Lua (with its preludes) must load
    into a real Redis and every Python file must compile, or the mutant dies instead of misbehaving."""
    import redis

    from oversold.infra.redis_server import RedisServer
    from oversold.orchestrate.planted import BUGS, plant
    from reference_backend.lua import PRELUDES, prelude_of, scripts

    with RedisServer.start(log_dir=tmp_path / "logs") as server:
        client = redis.Redis.from_url(server.url)
        try:
            for bug in BUGS:
                copy = plant(bug, tmp_path / bug.name) / "reference_backend"
                lua_dir = copy / "lua"
                for name in scripts(lua_dir):
                    parts = [(lua_dir / f"{p}.lua").read_text() for p in PRELUDES[prelude_of(name, lua_dir)]]
                    src = "\n".join([*parts, (lua_dir / f"{name}.lua").read_text()])
                    try:
                        client.script_load(src)
                    except redis.ResponseError as e:
                        raise AssertionError(f"planted bug {bug.name}: lua/{name}.lua does not load: {e}") from e
                for py in copy.rglob("*.py"):
                    compile(py.read_text(encoding="utf-8"), str(py), "exec")
        finally:
            client.close()
