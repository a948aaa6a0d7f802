"""The fast checker agrees with the plain one it replaced (tests/checker_oracle.py) on random histories.

Histories are drawn with few op ids, order ids, keys, users and instants, so
duplicates, orphans, reused order ids, split idempotency keys, exact time ties and
other sales' records are common; the final state is drawn independently, so every
invariant passes, fails and is unknown in turn.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from oversold.analysis.metrics import (
    _bounds,
    bot_hold_share,
    bot_holds,
    client_holds,
    compute_metrics,
    units_sold_by_kind,
)
from oversold.checker import SaleView, check, check_view
from oversold.model.calls import _pair_any, _pair_in_order, _sort_calls, pair
from oversold.model.history import FinalState, Op, history_order, read_history, write_history
from oversold.model.metric_spec import LEGIT_KINDS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from checker_oracle import OldView, old_check, old_metrics, old_pair  # noqa: E402

SALE = "moutai"

def _call(n, t, dt, user, op, sale, qty, oid, key, outcome, lat, side):
    """An operation as records: its invoke and completion, or one side alone (an orphan, a lone invoke)."""
    kind = "buyer" if user < 2 else "scalper"
    inv = Op("invoke", f"p{n}", 100.0 + t / 2, f"u{user}", f"u{user}", kind, op, sale, qty,
             order_id=None if op == "order" else oid, key=key)
    done = Op(outcome, f"p{n}", 100.0 + (t + dt) / 2, f"u{user}", f"u{user}", kind, op, sale, qty,
              order_id=oid, key=key, status=200 if outcome == "ok" else None, latency_ms=lat)
    return [inv, done] if side == "both" else [inv] if side == "invoke" else [done]


call = st.builds(
    _call, st.integers(0, 40), st.integers(0, 10), st.integers(0, 3), st.integers(0, 3),
    st.sampled_from(["order", "order", "pay", "pay", "cancel"]), st.sampled_from([SALE, SALE, SALE, SALE, "other"]),
    st.integers(1, 3), st.one_of(st.none(), st.sampled_from(["o0", "o0", "o0", "o1", "o1", "o2"])),
    st.one_of(st.none(), st.sampled_from(["k0", "k1", "k2"])), st.sampled_from(["ok", "ok", "ok", "fail", "info"]),
    st.one_of(st.none(), st.floats(1, 50)), st.sampled_from(["both", "both", "both", "both", "invoke", "done"]),
)
histories = st.lists(call, max_size=25).map(lambda calls: [r for c in calls for r in c])
sold_entry = st.fixed_dictionaries({
    "order_id": st.sampled_from(["o0", "o1", "o2", "o3", "o4", "ghost"]), "user_id": st.sampled_from(["u0", "u1", "u2"]),
    "qty": st.integers(1, 3), "paid_ms": st.integers(0, 10)})
hold_entry = st.fixed_dictionaries({
    "order_id": st.sampled_from(["o0", "o1", "o5"]), "user_id": st.sampled_from(["u0", "u3"]), "qty": st.integers(1, 2),
    "created_ms": st.just(0), "expires_ms": st.integers(0, 9000)})
finals = st.builds(
    lambda stock, sold, holds, has_audit, has_counters, limit: FinalState(
        sale_id=SALE, stock=stock, hold_ttl_ms=5000,
        counters={"available": stock - 2, "held": sum(h["qty"] for h in holds),
                  "sold": sum(e["qty"] for e in sold)} if has_counters else None,
        audit={"sale_id": SALE, "now_ms": 10_000, "sold": sold, "holds": holds} if has_audit else None,
        extra={"sale": {"per_user_limit": limit}} if limit else {}),
    st.integers(0, 6), st.lists(sold_entry, max_size=6), st.lists(hold_entry, max_size=3), st.booleans(),
    st.booleans(), st.integers(0, 3))


def _sums(view: SaleView) -> tuple[int, int, int, int]:
    calls = view.calls  # the totals as they were counted: four plain sums
    return (sum(c.qty for c in calls if c.op == "order"), sum(1 for c in calls if c.outcome == "ok"),
            sum(1 for c in calls if c.outcome == "fail"), sum(1 for c in calls if c.outcome == "info"))


# a reused order id with an ok pay: rare in random draws, so it is always tried too
REUSED = [Op("ok", "p1", 1.0, "u0", "u0", "buyer", "order", SALE, 1, order_id="o0"),
          Op("ok", "p2", 2.0, "u1", "u1", "buyer", "order", SALE, 2, order_id="o0"),
          Op("invoke", "p3", 3.0, "u1", "u1", "buyer", "pay", SALE, 2, order_id="o0"),
          Op("ok", "p3", 3.5, "u1", "u1", "buyer", "pay", SALE, 2, order_id="o0")]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories, finals, st.randoms(use_true_random=False), st.booleans())
@example(REUSED, FinalState(sale_id=SALE, stock=1, hold_ttl_ms=5000), random.Random(1), True)
def test_the_fast_checker_gives_the_old_verdicts_and_counterexamples(ops, final, rnd, expect):
    want = old_check(ops, final, expect_sell_out=expect).to_dict()
    shuffled = list(ops)
    rnd.shuffle(shuffled)
    got = check(shuffled, final, expect_sell_out=expect)
    assert got.to_dict() == want
    # in file order (by time) the pairing skips its sort and orders only the calls at one instant
    in_order = sorted(ops, key=history_order)
    assert check(in_order, final, expect_sell_out=expect).to_dict() == want
    assert pair(in_order, SALE) == old_pair(ops, SALE)
    t = got.totals
    assert (t.demand, t.ok_ops, t.fail_ops, t.info_ops) == _sums(OldView.build(ops, final))


# records the random draws rarely make: a NaN time (the checking reader takes "NaN"), a completion naming
# another user than its invoke, an operation that is no string
ODD = [Op("invoke", "h1", 100.0, "u3", "u3", "hoarder", "order", SALE),
       Op("ok", "h1", 100.5, "u3", "u3", "hoarder", "order", SALE, order_id="o9", latency_ms=2.0),
       Op("invoke", "h2", 101.0, "u3", "u3", "hoarder", "pay", SALE, order_id="o9"),
       Op("ok", "h2", float("nan"), "u3", "u3", "hoarder", "pay", SALE, order_id="o9"),
       Op("invoke", "h3", 101.2, "u3", "u3", "hoarder", "cancel", SALE, order_id="o9"),
       Op("ok", "h3", 101.4, "u3", "u3", "hoarder", "cancel", SALE, order_id="o9"),
       Op("invoke", "h4", 103.0, "u3", "u3", "hoarder", "read", SALE),  # the run goes on past the cancel
       Op("invoke", "b1", 100.1, "u1", "u1", "scalper", "order", SALE),
       Op("ok", "b1", 100.2, "u2", "u2", "buyer", "order", SALE, order_id="o1"),
       Op("invoke", "x1", 100.3, "u0", "u0", "buyer", ["order"], SALE)]  # type: ignore[arg-type]
ODD_FINAL = FinalState(sale_id=SALE, stock=2, hold_ttl_ms=5000, counters={"available": 0, "held": 0, "sold": 1},
                       audit={"sale_id": SALE, "now_ms": 10_000, "holds": [],
                              "sold": [{"order_id": "o1", "user_id": "u2", "qty": 1, "paid_ms": 5}]})


@settings(max_examples=200, deadline=None)
@given(histories, finals)
@example(ODD, ODD_FINAL)
@example(ODD[:7], ODD_FINAL)
@example(ODD[7:9], ODD_FINAL)
def test_the_metrics_from_the_checkers_view_are_the_old_metrics_from_the_records(ops, final):
    view = SaleView.build(ops, final)
    totals = check_view(view).totals
    old = old_metrics(ops, final, totals)
    for got in (compute_metrics(ops, final, totals=totals, view=view), compute_metrics(ops, final, totals=totals),
                compute_metrics(ops, final, totals=totals, view=OldView.build(ops, final))):
        assert _nan_safe(got.to_dict()) == _nan_safe(old.to_dict())
        assert got.missing == old.missing
    # a user's kind read through the view's orders is the kind the sale's records name (one kind a user here)
    mine = [o for o in ops if o.sale_id == SALE]
    assert units_sold_by_kind(mine, view.state, view) == units_sold_by_kind(mine, view.state)


def _nan_safe(d: dict) -> str:
    return json.dumps(d, sort_keys=True)  # NaN != NaN, but prints alike


@settings(max_examples=200, deadline=None)
@given(histories, st.sampled_from([1000, 5000]), st.integers(1, 8))
def test_the_bots_holds_alone_give_the_bot_hold_share_of_every_hold(ops, ttl_ms, stock):
    view = SaleView.build(ops, FinalState(sale_id=SALE, stock=stock, hold_ttl_ms=ttl_ms))
    calls = view.calls
    window = (100.0, 106.0)
    every = client_holds(calls, ttl_ms)
    bots = client_holds(calls, ttl_ms, skip_kinds=LEGIT_KINDS)
    assert bots == [h for h in every if h.kind not in LEGIT_KINDS]
    assert bot_holds(view, ttl_ms) == bots  # the same holds, read from the view's indexes
    assert bot_hold_share(bots, stock, window) == bot_hold_share(every, stock, window)


def _regular(calls):
    """Records as a history is written: one invoke per op id, its completion (if any) after it, in time order."""
    records = []
    for n, c in enumerate(calls):
        for r in c:
            records.append(msgspec.structs.replace(r, op_id=f"q{n}"))
    return sorted(records, key=history_order)


@settings(max_examples=300, deadline=None)
@given(st.lists(call.filter(lambda rs: rs[0].type == "invoke"), max_size=25).map(_regular))
def test_pairing_in_one_pass_gives_the_calls_of_pairing_in_any_order(ops):
    # the one-pass path takes every history written in order; the general one is what it must equal
    assert _pair_in_order([o for o in ops if o.sale_id == SALE]) is not None
    calls, _, unmatched, unfinished = _pair_any([o for o in ops if o.sale_id == SALE])
    _sort_calls(calls)
    got, counts = pair(ops, SALE)
    assert got == tuple(calls) and got == old_pair(ops, SALE)[0]
    assert (counts["unmatched_completions"], counts["unfinished_ops"], counts["duplicate_records"]) == (
        unmatched, unfinished, 0)


@settings(max_examples=300, deadline=None)
@given(st.one_of(histories, st.lists(call, max_size=25).map(_regular)))
def test_the_run_window_read_from_the_calls_is_the_window_of_the_records(ops):
    calls, counts = pair(ops, SALE)
    records = [o for o in ops if o.sale_id == SALE]
    start = min((o.time for o in records if o.type == "invoke"), default=None)
    if start is None and records:
        start = min(o.time for o in records)
    end = max((o.time for o in records), default=None)
    if counts["duplicate_records"] == 0:
        assert _bounds(calls) == (start, end)


def test_the_run_window_of_a_nan_time_is_left_to_the_records():
    ops = [Op("invoke", "a", float("nan"), "u", "u", "buyer", "order", SALE),
           Op("invoke", "b", 1.0, "u", "u", "buyer", "order", SALE)]
    assert _bounds(pair(ops, SALE)[0]) is None


def test_pairing_in_one_pass_gives_way_on_a_record_out_of_shape():
    inv = Op("invoke", "a", 1.0, "u", "u", "buyer", "order", SALE)
    done = Op("ok", "a", 2.0, "u", "u", "buyer", "order", SALE, order_id="o")
    for records in ([done, inv], [inv, inv, done], [inv, done, done], [done]):
        assert _pair_in_order(records) is None
        assert pair(records, SALE) == old_pair(records, SALE)


def test_a_history_with_a_reused_order_id_given_to_everyone_is_checked_in_linear_time():
    # a broken backend that answers every order with the same id: one id, thousands of calls
    ops = []
    for i in range(20_000):
        ops.append(Op("invoke", f"u{i}-1", float(i), f"u{i}", f"u{i}", "buyer", "order", SALE))
        ops.append(Op("ok", f"u{i}-1", i + 0.5, f"u{i}", f"u{i}", "buyer", "order", SALE, order_id="1"))
    view = SaleView.build(ops, FinalState(sale_id=SALE, stock=1, hold_ttl_ms=5000))
    assert len(view.order_calls["1"]) == 20_000 and view.order_call["1"].op_id == "u0-1"


def test_the_fast_reader_and_the_checking_reader_read_the_same_records(tmp_path):
    rnd = random.Random(3)
    ops = [Op(rnd.choice(["invoke", "ok", "fail", "info"]), f"p{i}", 100 + rnd.random(), f"u{i % 7}", f"u{i % 7}",
              "buyer", rnd.choice(["order", "pay"]), SALE, rnd.randint(1, 3),
              order_id=rnd.choice([None, "o1", "o\u00e9\"2"]), key=rnd.choice([None, "k"]), status=rnd.choice([None, 201]),
              latency_ms=rnd.choice([None, 1.25])) for i in range(300)]
    path = tmp_path / "history.jsonl"
    write_history(path, ops)
    fast = read_history(path)
    assert sorted(fast, key=lambda o: o.op_id) == sorted(ops, key=lambda o: o.op_id)
    # one line of a legacy shape sends its chunk through the checking reader: same records, and the old field read
    lines = path.read_text(encoding="utf-8").splitlines()
    legacy = json.loads(lines[5])
    legacy["sku"] = legacy.pop("sale_id")
    lines[5] = json.dumps(legacy)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert read_history(path) == fast
