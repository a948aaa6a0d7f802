"""The strategy benchmark: its pure aggregation and table, the page, and `oversold bench` for real."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import pytest
from paths import REPO

from oversold.analysis.bench_html import render_bench
from oversold.analysis.bench_table import (
    COLUMN_KEYS,
    COLUMNS,
    Bench,
    RunRow,
    format_cell,
    format_markdown,
    format_table,
    spread,
    summarize,
    to_csv,
)
from oversold.errors import BadInput
from oversold.orchestrate.bench import validate_strategies

SOLD_OUT = next(c for c in COLUMNS if c.key == "sold_out_s")
THROUGHPUT = next(c for c in COLUMNS if c.key == "throughput")


def row(strategy: str, k: int, verdict: str, **values: float | None) -> RunRow:
    full = {key: values.get(key, 1.0) for key in COLUMN_KEYS}
    return RunRow(strategy, k, verdict, 0 if verdict == "pass" else 1, full, f"runs/{strategy}-{k}", 3.0)


ROWS = [
    row("pre_deduct", 1, "pass", throughput=400.0, sold_out_s=3.0, oversold_units=0.0),
    row("pre_deduct", 2, "pass", throughput=500.0, sold_out_s=4.0, oversold_units=0.0),
    row("pre_deduct", 3, "pass", throughput=450.0, sold_out_s=None, oversold_units=0.0),
    row("naive", 1, "fail", throughput=300.0, sold_out_s=None, oversold_units=30.0),
    row("naive", 2, "pass", throughput=310.0, sold_out_s=None, oversold_units=0.0),
]


def test_spread_is_median_and_range_of_what_was_measured():
    s = spread([3.0, None, 1.0, 2.0])
    assert (s.median, s.min, s.max, s.n, s.runs) == (2.0, 1.0, 3.0, 3, 4)
    assert spread([None, None]).median is None


def test_summaries_keep_the_given_order_and_count_verdicts():
    sums = summarize(ROWS, ["naive", "pre_deduct"])
    assert [s.strategy for s in sums] == ["naive", "pre_deduct"]
    naive, pre = sums
    assert naive.verdict == "fail 1/2" and pre.verdict == "pass"
    assert pre.stats["throughput"].median == 450.0
    assert format_cell(THROUGHPUT, pre.stats["throughput"]) == "450 (400–500)"
    assert format_cell(SOLD_OUT, pre.stats["sold_out_s"]) == "3.5 (3.0–4.0) [1 never]"
    assert format_cell(SOLD_OUT, naive.stats["sold_out_s"]) == "never"


def test_table_csv_and_markdown_carry_every_column():
    sums = summarize(ROWS, ["pre_deduct", "naive"])
    text = format_table(sums)
    lines = text.splitlines()
    assert lines[0].startswith("strategy") and "sold out (s)" in lines[0] and len(lines) == 4
    md = format_markdown(sums).splitlines()
    assert md[1].startswith("| --- | --- | ---:") and md[2].startswith("| pre_deduct | pass | 450 (400–500)")
    rows = list(csv.DictReader(io.StringIO(to_csv(sums))))
    assert [r["strategy"] for r in rows] == ["pre_deduct", "naive"]
    assert rows[0]["throughput_median"] == "450.0" and rows[0]["throughput_min"] == "400.0"
    assert rows[1]["sold_out_s_median"] == ""  # never sold out: empty, not 0
    assert rows[1]["verdict"] == "fail 1/2"


def test_strategies_are_checked_against_the_reference_backend():
    known = ("pre_deduct", "naive", "order_deduct")
    assert validate_strategies(["pre_deduct", " naive"], known) == ("pre_deduct", "naive")
    with pytest.raises(BadInput) as e:
        validate_strategies(["pre_deduct", "telepathy", "pre_deduct"], known)
    assert "telepathy" in str(e.value) and "known: pre_deduct, naive, order_deduct" in str(e.value)
    assert "pre_deduct named more than once" in str(e.value)
    with pytest.raises(BadInput):
        validate_strategies([""], known)


def test_page_is_self_contained_and_escapes_what_it_shows():
    bench = Bench("tiny<script>", "x.yaml", 7, ("pre_deduct", "naive"), 3, list(ROWS),
                  command="oversold bench x.yaml --strategies pre_deduct,naive")
    page = render_bench(bench)
    assert "<script" not in page and "tiny&lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page and "src=" not in page
    assert page.count("<svg") == len(COLUMNS)
    assert "fail 1/2" in page and "450 (400–500)" in page


# --------------------------------------------------------------------------- the command


def oversold(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oversold.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


