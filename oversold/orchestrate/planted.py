"""Bugs planted into a copy of the reference backend, for ``oversold selftest``.

Each ``PlantedBug`` is a handful of text patches (``Patch``: this exact text,
found exactly once in that file, becomes that one) applied to a fresh copy of
``reference_backend/``; the backend in the repository never carries a bug,
and no flag can switch one on. A patch whose text is not in the backend (the
backend changed since) is an error naming the bug and the file, never a
silently unplanted bug: ``tests/unit/test_planted.py`` applies every one.

The classes come from the seed articles (/work/shared/seeds: pre-deduction and
its expiry loophole, purchase limits, asynchronous orders, stock sync, refund
and compensation) and from oversell bug reports of real shops (check then
decrement, the order-timeout job that cancels a paid order, an idempotency key
ignored on a double click, a consumer that acknowledges before it applies).

Usage::

    root = plant(BUGS_BY_NAME["expired_hold_payable"], tmp_dir)   # tmp_dir/reference_backend, patched
    # run the harness with PYTHONPATH=root and cwd=root: its nodes and workers are the mutant
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from oversold.errors import HarnessError

#: the reference backend the patches apply to (the orchestrator's own import of it)
BACKEND_DIR = Path(__file__).resolve().parents[2] / "reference_backend"


class PlantError(HarnessError):
    """A patch does not apply: its text is missing from the file, or is there more than once."""


@dataclass(frozen=True)
class Patch:
    """Replace ``old`` (present exactly once) with ``new`` in ``path`` (relative to reference_backend/)."""

    path: str
    old: str
    new: str


@dataclass(frozen=True)
class PlantedBug:
    """One bug class: what it is, where it comes from, how it is planted, which scenarios should catch it.

    Usage::

        PlantedBug("no_recheck_at_pay", "payment deducts without checking stock", "seed 001 (付款减库存)",
                   (Patch("lua/payment_deduct_pay.lua", "if avail >= o.qty then", "if true then"),),
                   ("payment_storm",))
    """

    name: str
    title: str
    source: str
    patches: tuple[Patch, ...]
    scenarios: tuple[str, ...]  # scenario names to try first (the selftest tries the rest after them)


BUGS: tuple[PlantedBug, ...] = (
    PlantedBug(
        "check_then_decrement",
        "pre_deduct checks stock with a read in the node, then the script takes it unchecked (not atomic)",
        "real shops: read stock, then decrement (the classic oversell); seed 000 (锁定库存)",
        # hold_order (lua/_sale.lua) places every pre_deduct, pre_deduct_coalesced and pre_deduct_ledger
        # order, one by one or batched: it keeps the scalper and limit checks and loses the stock check.
        # pre_deduct_buckets (short_ok) keeps its check: there it also decides when to bring units over
        # from other buckets, so taking it away would plant another bug. The node's read is in
        # LuaStrategy.order, before both order paths; a queued order's processor reads nothing (as before).
        (Patch("lua/_sale.lua", "  local refused = order_refusal(meta, user, qty, verdict, judged, short_ok)\n",
               "  local refused\n"
               "  if short_ok then refused = order_refusal(meta, user, qty, verdict, judged, short_ok)\n"
               "  else refused = policy_gate(meta, user, verdict, judged) or over_limit(meta, user, qty) end\n"),
         Patch("strategies/base.py",
               "        for _ in range(3):\n            raw, verdict = await self._verdict(sale_id, user_id)\n",
               "        if self.batch_script == 'pre_deduct_order_batch' and not order_id:\n"
               "            avail = int(await self.store.redis.get(SaleKeys(sale_id).avail) or 0)\n"
               "            if avail < qty:\n"
               "                return Reply(409, {'error': {'code': 'sold_out', 'message': f'qty: {avail} left'}})\n"
               "        for _ in range(3):\n            raw, verdict = await self._verdict(sale_id, user_id)\n")),
        ("flash_sale", "node_kill", "drop_reply")),
    PlantedBug(
        "no_recheck_at_pay",
        "payment_deduct settles a captured payment without checking that stock is left",
        "seed 001 (付款减库存: 100 pay for 1 unit)",
        (Patch("lua/payment_deduct_pay.lua", "if avail >= o.qty then\n  take(meta, o.qty, 'pay')",
               "if true then\n  take(meta, o.qty, 'pay')"),),
        ("payment_storm",)),
    PlantedBug(
        "expired_hold_payable",
        "paying an expired (released) hold confirms it without taking fresh stock",
        "seed 001 (预扣库存 loophole: paying after expiry)",
        (Patch("lua/pre_deduct_pay.lua",
               "local refused = take_fresh_for_expired(meta, o)\nif refused then return refused end\n"
               "redis.call('INCRBY', K_SOLD, o.qty)",
               "redis.call('INCRBY', K_SOLD, o.qty)"),),
        ("late_payers",)),
    PlantedBug(
        "reaper_releases_paid",
        "a paid hold stays on the reaper's list and the reaper releases it at expiry (the order-timeout job "
        "cancels a paid order)",
        "real shops: timeout job releases stock of an order paid just before; seed 000 (锁定库存, release on timeout)",
        (Patch("lua/pre_deduct_pay.lua", "  redis.call('ZREM', K_HOLDS, o.order_id)\n  mark_paid(o, now)",
               "  mark_paid(o, now)"),
         Patch("lua/reap.lua", "if f[1] == 'held' then", "if f[1] == 'held' or f[1] == 'paid' then")),
        ("flash_sale", "late_payers")),
    PlantedBug(
        "cancel_releases_expired",
        "cancelling a hold the reaper already released gives its units back a second time (double release)",
        "real shops: double release of a lock on cancel after timeout",
        (Patch("lua/pre_deduct_cancel.lua", "if o.status == 'held' then",
               "if o.status == 'held' or o.status == 'expired' then"),),
        ("late_cancel",)),
    PlantedBug(
        "order_key_ignored",
        "the order script ignores the Idempotency-Key: a double click holds twice",
        "real shops: duplicate orders on a double click / retry",
        # hold_order: every pre_deduct-family order, alone or in a batch
        (Patch("lua/_sale.lua",
               "local function hold_order(user, qty_arg, verdict, judged, given, nonce, short_ok)\n"
               "  local prev = replayed()\n  if prev then return prev end\n",
               "local function hold_order(user, qty_arg, verdict, judged, given, nonce, short_ok)\n"),),
        ("late_payers",)),
    PlantedBug(
        "limit_off_by_one",
        "the per-user limit lets one unit more through",
        "seed 000 (限购)",
        (Patch("lua/_sale.lua", "if mine + qty > meta.limit then", "if mine + qty > meta.limit + 1 then"),),
        ("scalper_rush",)),
    PlantedBug(
        "ack_before_apply",
        "an order processor acknowledges the queued orders it read before it applies them: killed in between, "
        "they are lost",
        "seed 000 (异步处理订单); real shops: messages acked on receipt, before they were processed",
        (Patch("order_worker.py",
               "        r = self.store.redis\n        for entry_id, fields in entries:\n",
               "        r = self.store.redis\n"
               "        async with r.pipeline(transaction=True) as p:\n"
               "            for entry_id, _ in entries:\n"
               "                p.xack(stream, ORDER_GROUP, entry_id)\n"
               "                p.xdel(stream, entry_id)\n"
               "            await p.execute()\n"
               "        for entry_id, fields in entries:\n"),
         Patch("order_worker.py",
               "            # applied (or found applied): only now may the entry go\n"
               "            async with r.pipeline(transaction=True) as p:\n"
               "                p.xack(stream, ORDER_GROUP, entry_id)\n"
               "                p.xdel(stream, entry_id)\n"
               "                await p.execute()\n", "")),
        ("worker_kill",)),
    PlantedBug(
        "sync_apply_twice",
        "the sync worker applies events one by one and acknowledges the batch after, with no record of applied "
        "events: a batch replayed after a crash is sold twice in the ledger",
        "seed 000 (数据实时同步) / seed 001 (front and warehouse stock); real shops: at-least-once consumer "
        "without idempotency",
        (Patch("sync.py", "        outcomes = self.ledger.apply_front_events(sku, events)\n",
               "        outcomes = [o for ev in events for o in self.ledger.apply_front_events(sku, [ev])]\n"),
         Patch("ledger.py",
               "                seen = db.execute(\"INSERT OR IGNORE INTO applied (sku, event_id) VALUES (?, ?)\", "
               "(sku, ev.event_id))\n                if seen.rowcount == 0:\n"
               "                    out.append(\"duplicate\")\n                    continue\n",
               "                db.execute(\"INSERT OR IGNORE INTO applied (sku, event_id) VALUES (?, ?)\", "
               "(sku, ev.event_id))\n"),
         Patch("ledger.py",
               "        if db.execute(\"SELECT 1 FROM sold_orders WHERE sku = ? AND order_id = ?\", "
               "(sku, order_id)).fetchone():\n            return True\n        if c.sold + qty > c.stock:",
               "        if c.sold + qty > c.stock:"),
         Patch("ledger.py", "db.execute(\"INSERT INTO sold_orders (sku, order_id, qty) VALUES (?, ?, ?)\"",
               "db.execute(\"INSERT OR IGNORE INTO sold_orders (sku, order_id, qty) VALUES (?, ?, ?)\"")),
        ("worker_kill", "sync_delay")),
    PlantedBug(
        "ttl_node_clock",
        "a hold's expiry is taken from the node's own clock, not Redis's: a node whose clock runs ahead makes "
        "holds that outlive their TTL",
        "seed 000 (锁定库存 with a time limit); real shops: expiry computed on app servers with drifting clocks",
        # the node's clock rides on the request (req.node_now) into hold_order: ARGV 13 of a single order
        # (ARGV 12 stays the buckets' 'need', empty here), element 7 of each order of a batch, so
        # pre_deduct, pre_deduct_coalesced, pre_deduct_ledger and pre_deduct_buckets all carry it
        (Patch("lua/_sale.lua", "  local expires = now + meta.ttl\n",
               "  local expires = (tonumber(req.node_now or '') or now) + meta.ttl\n"),
         Patch("lua/_op.lua", "idem = K_IDEM}", "idem = K_IDEM, node_now = ARGV[13]}"),
         Patch("lua/pre_deduct_order_batch.lua", "idem = idem_prefix .. (key ~= '' and key or '-')}",
               "idem = idem_prefix .. (key ~= '' and key or '-'), node_now = o[7]}"),
         Patch("strategies/base.py", "order_id or \"\", new_order_nonce())",
               "order_id or \"\", new_order_nonce(), \"\", node_now_ms())"),
         Patch("strategies/base.py", "nonce or new_order_nonce()))",
               "nonce or new_order_nonce(), node_now_ms()))"),
         Patch("strategies/base.py", "from ..errors import ApiError, StrategyMoved\n",
               "from ..clock import node_now_ms\nfrom ..errors import ApiError, StrategyMoved\n")),
        ("clock_skew",)),
    PlantedBug(
        "no_refund_when_sold_out",
        "a payment captured when no stock is left is neither shipped nor refunded",
        "seed 000 (退款与赔偿)",
        (Patch("lua/payment_deduct_pay.lua",
               "local refund, comp = refund_and_compensate(o, meta.price, meta.coupon, 'sold_out', now)",
               "local refund, comp = nil, nil"),),
        ("payment_storm",)),
    PlantedBug(
        "sold_not_recorded",
        "a payment is acknowledged but the order never reaches the sold record (the audit)",
        "real shops: an acknowledged sale missing from the order records",
        # mark_paid: the payment of every Lua strategy
        (Patch("lua/_sale.lua", "  redis.call('HSET', K_SOLD_SET, o.order_id, o.qty)\n  o.status = 'paid'",
               "  o.status = 'paid'"),),
        ("flash_sale",)),
    PlantedBug(
        "cancel_paid_returns_stock",
        "cancelling a paid order gives its units back to stock while it stays sold",
        "real shops: cancel after payment returns stock",
        (Patch("lua/pre_deduct_cancel.lua",
               "if o.status == 'paid' or o.status == 'refunded' or o.status == 'confirming' then",
               "if o.status == 'paid' then\n  redis.call('INCRBY', K_AVAIL, o.qty)\n  return ok(200, o)\nend\n"
               "if o.status == 'refunded' or o.status == 'confirming' then"),),
        ()),
    PlantedBug(
        "refund_returns_stock",
        "refunding a sold order puts its units back on sale while it stays sold",
        "seed 000 (退款与赔偿); real shops: refund restocks a unit that shipped",
        (Patch("lua/refund.lua", "redis.call('INCRBY', skey('refunded_sold'), o.qty)",
               "redis.call('INCRBY', skey('refunded_sold'), o.qty)\nredis.call('INCRBY', K_AVAIL, o.qty)"),),
        ()),
)

BUGS_BY_NAME: dict[str, PlantedBug] = {b.name: b for b in BUGS}


def apply_patches(root: Path, bug: PlantedBug) -> None:
    """Apply ``bug``'s patches to the backend copy under ``root`` (its reference_backend/)."""
    for patch in bug.patches:
        path = root / "reference_backend" / patch.path
        if not path.is_file():
            raise PlantError(f"planted bug {bug.name}: no file reference_backend/{patch.path}")
        text = path.read_text(encoding="utf-8")
        found = text.count(patch.old)
        if found != 1:
            raise PlantError(f"planted bug {bug.name}: reference_backend/{patch.path} has the patched text "
                             f"{found} times, not once (the backend changed?): {patch.old[:80]!r}")
        path.write_text(text.replace(patch.old, patch.new), encoding="utf-8")


def plant(bug: PlantedBug | None, dest: Path, *, source: Path = BACKEND_DIR) -> Path:
    """A copy of the reference backend in ``dest/reference_backend`` with ``bug`` planted (None: unchanged).

    Returns ``dest``: put it first on ``PYTHONPATH`` (and run from it) so ``python -m reference_backend``
    and the workers are this copy.
    """
    target = dest / "reference_backend"
    if target.exists():
        shutil.rmtree(target)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if bug is not None:
        apply_patches(dest, bug)
    return dest
