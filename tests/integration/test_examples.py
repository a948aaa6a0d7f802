"""The worked examples of examples/, run as a user would: their own backend on loopback, `oversold run --host`.

Each example has a correct endpoint (must pass: exit 0) and a deliberately broken
one (must be caught: exit 1, with ``oversold_units`` equal to what the example's
own database says was sold beyond stock).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from example_util import copy_example, oversold_run, set_options, start_app

pytestmark = pytest.mark.e2e


def _sqlite_sold(db: Path, item: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COALESCE(SUM(qty), 0) FROM orders WHERE item = ?", (item,)).fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def sqlite_shop(tmp_path: Path):
    cwd = copy_example("sqlite_shop", tmp_path / "shop")
    app, url = start_app(["app.py", "--db", "shop.db"], cwd)
    try:
        yield cwd, url
    finally:
        app.stop()


def test_sqlite_shop_correct_endpoint_passes_and_broken_one_is_caught(sqlite_shop) -> None:
    cwd, url = sqlite_shop
    code, results, out = oversold_run(cwd, url, "run-safe")
    assert code == 0, out
    assert results["verdict"] == "pass" and results["totals"]["oversold_units"] == 0
    statuses = {inv["name"]: inv["status"] for inv in results["invariants"]}
    assert statuses["no_oversell"] == statuses["conservation"] == "pass"
    assert statuses["no_lost_sale"] == "not_applicable"
    assert "n/a" in out and "(SqliteShopAdapter)" in out and "pre_deduct" not in out
    assert _sqlite_sold(cwd / "shop.db", "widget") == results["totals"]["stock"] == 40

    set_options(cwd / "scenario.yaml", endpoint="unsafe")
    code, results, out = oversold_run(cwd, url, "run-unsafe")
    assert code == 1, out
    sold = _sqlite_sold(cwd / "shop.db", "widget")
    assert sold > 40, "the unsafe endpoint did not oversell this time"
    assert results["totals"]["oversold_units"] == sold - 40  # the database's own count
    assert "oversold units 0" not in out


def test_sqlite_shop_correct_endpoint_never_alarms_over_20_seeded_runs(sqlite_shop) -> None:
    cwd, url = sqlite_shop
    codes = {}
    for seed in range(1, 21):
        set_options(cwd / "scenario.yaml", seed=seed)
        code, results, out = oversold_run(cwd, url, f"run-{seed}", "--duration", "2")
        codes[seed] = code
        assert code != 1, out  # a false alarm is the worst outcome
    assert set(codes.values()) == {0}, codes


@pytest.fixture
def pg_redis_shop(tmp_path: Path):
    from example_util import Postgres

    from oversold.infra.redis_server import RedisServer

    cwd = copy_example("pg_redis_shop", tmp_path / "shop")
    with Postgres.start() as pg, RedisServer.start() as cache:
        set_options(cwd / "scenario.yaml", dsn=pg.dsn, redis=cache.url)
        app, url = start_app(["app.py", "--dsn", pg.dsn, "--redis", cache.url], cwd)
        try:
            yield cwd, url, pg
        finally:
            app.stop()


def _pg_sold(dsn: str, item: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT COALESCE(SUM(qty), 0) FROM orders WHERE item = %s", (item,)).fetchone()[0]


def test_pg_redis_shop_correct_endpoint_passes_and_broken_one_is_caught(pg_redis_shop) -> None:
    cwd, url, pg = pg_redis_shop
    code, results, out = oversold_run(cwd, url, "run-safe")
    assert code == 0, out
    statuses = {inv["name"]: inv["status"] for inv in results["invariants"]}
    # rows by user decide more than a count: the audit's own lists are reconciled too
    assert statuses["no_oversell"] == statuses["conservation"] == statuses["single_payment"] == "pass"
    assert statuses["no_phantom_sale"] == "not_applicable"
    assert _pg_sold(pg.dsn, "widget") == 40 and results["totals"]["sold"] == 40

    set_options(cwd / "scenario.yaml", endpoint="fast")
    code, results, out = oversold_run(cwd, url, "run-fast")
    assert code == 1, out
    sold = _pg_sold(pg.dsn, "widget")
    assert sold > 40, "the fast endpoint did not oversell this time"
    assert results["totals"]["oversold_units"] == sold - 40
