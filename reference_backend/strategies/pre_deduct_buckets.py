"""``pre_deduct_buckets``: a hot sale's stock split into buckets, each on its own slot (its own shard on a cluster).

A sale ``S`` with ``buckets: N`` keeps its settings and total stock under its
own keys (``os:{S}:meta``) and its stock in N buckets. A bucket is laid out
exactly as a ``pre_deduct`` sale, under its own hash tag ``S~<b>~<k>`` (``k``
picked at creation so that, on a Redis Cluster, bucket *b* lands on primary
*b mod shards*), and every step on it is a ``pre_deduct`` script: holds with a
TTL, the reaper, payment, cancel, refunds, the oversell detector.

- **Home bucket**: a user's orders all go to bucket ``crc32(user) mod N``, so the
  user's limit (``users``), idempotency keys and orders live in one bucket and
  stay exact. An order id carries its bucket (``<seq>-b<b>_<12 hex>``), so pay,
  cancel, refund and reads go straight to it.
- **Falling back**: an order that finds too little in its home bucket is not
  refused: the script answers how much there is (nothing written), the node
  reads every bucket's counters at once and moves units over from the others
  that have some (a transfer: ``bucket_send.lua`` takes what the order needs, or
  half of the donor's leftovers if more, out of one bucket, ``bucket_receive.lua``
  adds them to the other once per transfer id) and orders again. Transfers it
  finds in flight (another order's, the rebalancer's) it finishes first, as the
  rebalancer would: their units are in no bucket until then.
- **Sold out** is answered only when every other bucket is empty and no unit is
  on its way: two looks at every bucket, one after the other, each find the
  others empty and no transfer in flight, and no bucket sent a transfer between
  them (each counts its transfers out in its meta's ``sends``). Then no unit
  moved between buckets from the first look to the second, so at a moment
  between them the others held only units that were both given back (a hold
  lapsed or was cancelled) and taken again within that bucket's two reads. The
  home bucket's last answer comes after that moment, and refuses only if the
  home bucket has sent nothing since the second look (the order script checks
  its ``sends``; if it did, units may have left, and the order asks again). One
  look is not enough: a unit moving between two buckets can be read in neither
  (``lua/bucket_look.lua`` is one look at one bucket). The orders a node has
  waiting for a look share one begun after each asked, so a sold-out sale costs
  one look per round trip, not two per order. An order that keeps finding units
  moving gives up after ``GATHER_TRIES`` with a 503, never a sold_out it cannot
  prove.
- **Rebalancing**: every node, each tick, finishes transfers stranded between
  their two steps (a node died) and gives an empty bucket half of the fullest
  bucket's leftovers, so stock does not wait in a bucket nobody orders from.
- **Counters and audit** are the sums over the buckets (units sent and not yet
  received count as available), stock the sale's total, so the checker's
  invariants hold unchanged. The audit's ``released`` joins every bucket's: each
  bucket's cancel, pay-after-expiry and reaper record the holds they give back.
- **Coalesced**: each bucket's concurrent orders share one batch script call.

Not supported: ``async_orders``, inventory warnings (a bucket sees only its
share of stock, so a threshold on it means nothing), the warehouse ledger, and
paying an expired hold from fresh stock of another bucket (``fresh_stock`` takes
from the order's own bucket only). A reused Idempotency-Key is told apart from
another user's request only when both users have the same home bucket.

Usage::

    strategy = PreDeductBuckets(store, StrategyOptions())
    await strategy.put_sale("hot", SaleConfig(stock=1000, hold_ttl_ms=5000, strategy="pre_deduct_buckets", buckets=4))
    reply = await strategy.order("hot", "alice", 1, key="k-1")   # held in alice's home bucket
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import re
import secrets
import zlib
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, NamedTuple

from redis.crc import key_slot

from ..coalesce import CoalesceConfig, Coalescer
from ..errors import REDIS_DOWN, ApiError, StrategyMoved, bad_request
from ..keys import SALES, SaleKeys
from ..replies import Reply
from ..sale import SaleConfig
from .base import BatchKey, PolicyMoved, StrategyOptions
from .pre_deduct import PreDeduct

log = logging.getLogger("reference_backend")

BUCKET_OF_ORDER = re.compile(r"-b(\d+)_[0-9a-f]{12}\Z")
STRANDED_MS = 1000  # a transfer unconfirmed this long lost its node between the steps: any node finishes it
GATHER_TRIES = 32  # an order tries its home bucket at most this often (units keep moving: a 503)


@dataclass(frozen=True, slots=True)
class Layout:
    """The buckets of one incarnation of a sale: their hash tags, and the token their metas carry."""

    tags: tuple[str, ...]
    generation: str

    @property
    def strategy(self) -> str:
        # what a bucket's meta says instead of a bare strategy name, so a node holding the
        # layout of an earlier incarnation is told ({'s', ...}) and reads the new one
        return f"{PreDeductBuckets.name}@{self.generation}"

    def home(self, user_id: str) -> int:
        return zlib.crc32(user_id.encode()) % len(self.tags)


class PreDeductBuckets(PreDeduct):
    """Pre-deduction into holds, the stock in buckets on different slots; see the module docstring."""

    name = "pre_deduct_buckets"
    coalesce = True
    supports_async = False
    ledger_sync = False

    def __init__(self, store: Any, options: StrategyOptions) -> None:
        super().__init__(store, options)
        self._layouts: dict[str, Layout] = {}
        self._transfer_ids = itertools.count(1)
        self._node_tag = secrets.token_hex(4)  # transfer ids: unique across nodes and restarts
        # one look at a sale's buckets serves every order asking meanwhile; each gets one begun after it asked
        self._looks: Coalescer[None, list[Look] | None] = Coalescer(self._look_now, CoalesceConfig(max_batch=1 << 20))

    # -- the layout ------------------------------------------------------------------

    async def layout(self, sale_id: str, *, fresh: bool = False) -> Layout | None:
        """The sale's buckets (cached); None without a sale; StrategyMoved if it is another strategy's now."""
        if not fresh and sale_id in self._layouts:
            return self._layouts[sale_id]
        strategy, tags, generation = await self.store.redis.hmget(SaleKeys(sale_id).meta, "strategy", "bucket_tags",
                                                                   "layout")
        if strategy is None:
            self._layouts.pop(sale_id, None)
            return None
        if strategy.decode() != self.name:
            self._layouts.pop(sale_id, None)
            raise StrategyMoved(strategy.decode())
        found = self._layouts[sale_id] = Layout(tuple(tags.decode().split(",")), generation.decode())
        return found

    def _spread(self, sale_id: str, n: int) -> list[str]:
        """Hash tags for n buckets: on a cluster, bucket b on the (b mod shards)-th primary by slot order."""
        if not self.store.cluster:
            return [f"{sale_id}~{b}~0" for b in range(n)]
        cluster = self.store.redis
        owners: list[str] = []
        for slot in range(0, 16384, 64):  # the primaries in slot order
            node = cluster.nodes_manager.get_node_from_slot(slot)
            if node.name not in owners:
                owners.append(node.name)
        tags = []
        for b in range(n):
            want = owners[b % len(owners)]
            for k in range(10_000):
                tag = f"{sale_id}~{b}~{k}"
                if cluster.nodes_manager.get_node_from_slot(key_slot(tag.encode())).name == want:
                    break
            tags.append(tag)
        return tags

    async def put_sale(self, sale_id: str, cfg: SaleConfig) -> dict[str, Any]:
        if cfg.warn_thresholds or cfg.warn_webhook_url:
            raise bad_request(f"warn_thresholds: {self.name} has no inventory warnings (a bucket sees only its "
                              f"share of the stock)")
        n = cfg.buckets or 1
        await self.store.forget_buckets(sale_id)
        layout = Layout(tuple(self._spread(sale_id, n)), secrets.token_hex(6))
        # the sale's own keys: settings, total stock, profiles; its own counters stay 0
        await self.store.write_sale(sale_id, dataclasses.replace(cfg, stock=0),
                                    meta={"stock": cfg.stock, "bucket_tags": ",".join(layout.tags),
                                          "layout": layout.generation})
        bucket_cfg = dataclasses.replace(cfg, profiles={})
        for b, tag in enumerate(layout.tags):
            share = cfg.stock // n + (1 if b < cfg.stock % n else 0)
            await self.store.write_sale(tag, dataclasses.replace(bucket_cfg, stock=share),
                                        meta={"strategy": layout.strategy, "bucket_of": sale_id, "bucket": b})
        self.store.policies.put(sale_id, cfg.scalper_policy.encode() if cfg.scalper_policy else "")
        self._layouts[sale_id] = layout
        counters = await self.counters(sale_id)
        assert counters is not None
        return counters

    # -- orders ------------------------------------------------------------------------

    async def order(self, sale_id: str, user_id: str, qty: int, key: str | None,
                    order_id: str | None = None) -> Reply:
        if order_id is not None:
            raise ApiError(400, "bad_request", f"async_orders: {self.name} does not queue orders")
        for _ in range(3):
            layout = await self.layout(sale_id)
            if layout is None:
                raise ApiError(404, "unknown_sale", f"sale_id: no sale {sale_id}")
            raw, verdict = await self._verdict(sale_id, user_id)
            try:
                reply = await self._place(sale_id, layout, user_id, qty, key, verdict, raw)
            except PolicyMoved as moved:  # this node's policy was stale: judge again by the sale's
                self.store.policies.put(sale_id, moved.raw)
                continue
            except StrategyMoved as moved:
                await self._moved(sale_id, moved)
                continue
            if not _bucket_gone(reply):
                return reply
            await self.layout(sale_id, fresh=True)  # reset meanwhile; raises if it is another strategy's now
        raise ApiError(503, "unavailable", f"sale {sale_id} keeps changing (policy or buckets)")

    async def _place(self, sale_id: str, layout: Layout, user_id: str, qty: int, key: str | None, verdict: str,
                     raw: str) -> Reply:
        """Order in the home bucket; when it is short, bring units over and order again; once no unit is
        left elsewhere, the home bucket's answer is the last (it may still find units that came back)."""
        home = layout.home(user_id)
        proven: int | None = None  # the home bucket's sends when a sell-out was proven
        for tries in itertools.count():
            batch = BatchKey(sale_id, layout.tags[home], layout.strategy, "need" if proven is None else str(proven))
            kind, payload = await self._submit(batch, user_id, qty, key, verdict, raw,
                                               nonce=f"b{home}_{secrets.token_hex(6)}")
            if kind != b"n":
                return self._answer(kind, payload, f"{qty}:{user_id}")
            if tries == GATHER_TRIES:
                break
            proven = await self._gather(sale_id, layout, home, qty - int(payload))
        raise ApiError(503, "unavailable", f"sale {sale_id}: units kept moving between its buckets "
                                           f"({GATHER_TRIES} tries); try again")

    async def _gather(self, sale_id: str, layout: Layout, home: int, need: int) -> int | None:
        """Bring at least ``need`` units into bucket ``home`` from the others, nearest first (each donor
        gives half of what it has if that is more: the home bucket ran dry). When there is nothing to
        bring (every other bucket empty and nothing in flight, see the module docstring): the home
        bucket's sends in the second look, which its last answer must still find; else None (the
        home bucket is to be tried again).

        Every bucket is read at once: near the end of a sale most buckets are empty, and asking
        each in turn would cost a round trip per bucket.
        """
        first = await self._look(sale_id, layout)
        if first is None:
            return None
        others = [(home + step) % len(layout.tags) for step in range(1, len(layout.tags))]
        if any(first[b].available > 0 for b in others):
            moved = 0
            for src in others:
                if moved >= need:
                    break
                if first[src].available > 0:
                    moved += await self.transfer(layout, src, home, need - moved)
            return None
        if any(look.in_flight for look in first):  # only units in flight are left: land them, look again
            await self._land(layout, [b for b, look in enumerate(first) if look.in_flight])
            return None
        second = await self._look(sale_id, layout)
        return second[home].sends if nothing_elsewhere(first, second, home) else None  # type: ignore[index]

    async def _look(self, sale_id: str, layout: Layout) -> list[Look] | None:
        """One look at every bucket (lua/bucket_look.lua), all at once, begun after this call; None if the
        sale was reset to other buckets (the home bucket's next answer says so). Concurrent orders share
        it: when the sale has sold out, most orders need two."""
        looks = await self._looks.submit(layout, None)
        if looks is None and await self.layout(sale_id, fresh=True) == layout:
            raise ApiError(503, "unavailable", f"sale {sale_id}: a bucket is missing (a reset is under way)")
        return looks

    async def _look_now(self, layout: Hashable, asking: list[None]) -> list[list[Look] | None]:
        assert isinstance(layout, Layout)
        script = self.store.script("bucket_look")
        got = await asyncio.gather(*(script(keys=[(k := SaleKeys(tag)).meta, k.avail, k.sent], args=[layout.strategy])
                                     for tag in layout.tags))
        looks = [Look(int(avail), int(sends), int(in_flight)) for avail, sends, in_flight in got]
        return [None if any(look.available < 0 for look in looks) else looks] * len(asking)

    async def _land(self, layout: Layout, sources: list[int]) -> None:
        """Finish every transfer the buckets ``sources`` have in flight (another node's too: each adds
        its units once)."""
        for src in sources:
            for tid, record in (await self.store.redis.hgetall(SaleKeys(layout.tags[src]).sent)).items():
                dst, qty, _ms = record.decode().split(":")
                await self._deliver(layout, src, int(dst), tid.decode(), int(qty))

    async def transfer(self, layout: Layout, src: int, dst: int, want: int) -> int:
        """Move ``want`` available units (or half of ``src``'s, if more; never more than it has) from bucket
        ``src`` to bucket ``dst``; how many moved."""
        tid = f"{self._node_tag}-{next(self._transfer_ids)}"
        s = SaleKeys(layout.tags[src])
        sent = int(await self.store.script("bucket_send")(
            keys=[s.meta, s.avail, s.sent], args=[tid, dst, want, layout.strategy]))
        if sent:
            await self._deliver(layout, src, dst, tid, sent)
        return sent

    async def _deliver(self, layout: Layout, src: int, dst: int, tid: str, qty: int) -> None:
        d = SaleKeys(layout.tags[dst])
        added = await self.store.script("bucket_receive")(keys=[d.meta, d.avail, d.received],
                                                          args=[tid, qty, layout.strategy])
        if int(added) >= 0:  # -1: reset since, and the record read may be the new sale's: not ours to drop
            await self.store.redis.hdel(SaleKeys(layout.tags[src]).sent, tid)

    async def _moved(self, sale_id: str, moved: StrategyMoved) -> None:
        """A bucket's meta named another layout: read the sale's again (or follow it to its new strategy)."""
        if not moved.actual.startswith(self.name + "@"):
            raise moved
        await self.layout(sale_id, fresh=True)

    # -- steps on one order ------------------------------------------------------------

    async def pay(self, sale_id: str, order_id: str, key: str | None) -> Reply:
        return await self._in_bucket("pay", sale_id, order_id, key)

    async def cancel(self, sale_id: str, order_id: str, key: str | None) -> Reply:
        return await self._in_bucket("cancel", sale_id, order_id, key)

    async def _in_bucket(self, op: str, sale_id: str, order_id: str, key: str | None) -> Reply:
        for _ in range(2):
            layout, b = await self._bucket_of(sale_id, order_id)
            try:
                reply = await self._run(op, sale_id, key, order_id, order_id, order_id, keys_of=layout.tags[b],
                                        strategy=layout.strategy)
            except StrategyMoved as moved:
                await self._moved(sale_id, moved)
                continue
            if not _bucket_gone(reply):
                return reply
            await self.layout(sale_id, fresh=True)
        raise ApiError(503, "unavailable", f"sale {sale_id} keeps changing its buckets")

    async def _bucket_of(self, sale_id: str, order_id: str, *, fresh: bool = False) -> tuple[Layout, int]:
        """The layout and the bucket an order id names; an id this layout cannot hold is read again once
        against the sale's current layout (this node's may be stale), then a 404."""
        layout = await self.layout(sale_id, fresh=fresh)
        if layout is None:
            raise ApiError(404, "unknown_sale", f"sale_id: no sale {sale_id}")
        found = BUCKET_OF_ORDER.search(order_id)
        if found is None or int(found.group(1)) >= len(layout.tags):
            if not fresh:
                return await self._bucket_of(sale_id, order_id, fresh=True)
            raise ApiError(404, "unknown_order", f"order_id: no order {order_id} in sale {sale_id}")
        return layout, int(found.group(1))

    async def get_order(self, sale_id: str, order_id: str) -> Reply:
        return await self._read_in_bucket(sale_id, order_id, lambda tag: self.store.get_order(
            sale_id, order_id, keys_of=tag))

    async def refund(self, sale_id: str, order_id: str, key: str | None) -> Reply:
        return await self._read_in_bucket(sale_id, order_id, lambda tag: self.store.refund(
            sale_id, order_id, key, keys_of=tag))

    async def _read_in_bucket(self, sale_id: str, order_id: str, call: Any) -> Reply:
        """``call(tag)`` on the order's bucket; a bucket gone since this node read the layout: once more."""
        for fresh in (False, True):
            layout, b = await self._bucket_of(sale_id, order_id, fresh=fresh)
            try:
                reply = await call(layout.tags[b])
            except ApiError as e:
                if e.code != "unknown_sale" or fresh:
                    raise
                continue
            if not _bucket_gone(reply) or fresh:
                return reply
        raise AssertionError("unreachable")

    # -- the sale as a whole -------------------------------------------------------------

    async def counters(self, sale_id: str) -> dict[str, Any] | None:
        found = await self._totals(sale_id)
        return None if found is None else found[0]

    async def _totals(self, sale_id: str) -> tuple[dict[str, Any], Layout] | None:
        """The sale's counters, summed over its buckets; units in transfer count as available."""
        layout = await self.layout(sale_id, fresh=True)  # raises StrategyMoved when the sale is another's now
        if layout is None:
            return None
        own = await self.store.counters(sale_id)
        if own is None:
            return None
        got = await asyncio.gather(*(self.store.counters_of(tag) for tag in layout.tags))
        if any(g is None for g in got):
            raise ApiError(503, "unavailable", f"sale {sale_id}: a bucket is missing (a reset is under way)")
        total = {name: 0 for name in ("available", "held", "sold", "refunded")}
        for bucket, _sent in got:  # type: ignore[misc]
            for name in total:
                total[name] += bucket[name]
        total["available"] += await self._in_transfer(layout, [sent for _, sent in got])  # type: ignore[misc]
        now = min(bucket["now_ms"] for bucket, _ in got)  # type: ignore[misc]
        return {**own, **total, "now_ms": now, "buckets": len(layout.tags)}, layout

    async def _in_transfer(self, layout: Layout, sent: list[dict[str, str]]) -> int:
        """Units sent by one bucket and not yet added to the other."""
        units = 0
        for src, records in enumerate(sent):
            for tid, record in records.items():
                dst, qty, _ms = record.split(":")
                if not await self.store.redis.sismember(SaleKeys(layout.tags[int(dst)]).received, tid):
                    units += int(qty)
        return units

    async def audit(self, sale_id: str) -> dict[str, Any] | None:
        found = await self._totals(sale_id)
        if found is None:
            return None
        counters, layout = found
        audits = await asyncio.gather(*(self.store.audit(sale_id, keys_of=tag) for tag in layout.tags))
        if any(a is None for a in audits):
            raise ApiError(503, "unavailable", f"sale {sale_id}: a bucket is missing (a reset is under way)")
        merged: dict[str, Any] = {"sale_id": sale_id, "now_ms": min(a["now_ms"] for a in audits),  # type: ignore[index]
                                  "counters": counters, "refunded_sold": 0}
        for name in ("sold", "holds", "payments", "refunds", "compensations", "warnings", "alerts"):
            merged[name] = [row for a in audits for row in a[name]]  # type: ignore[index]
        merged["refunded_sold"] = sum(a["refunded_sold"] for a in audits)  # type: ignore[index]
        merged["released"] = _released_sum(audits)  # type: ignore[arg-type]
        merged["buckets"] = [{"bucket": b, "tag": tag, **{k: a["counters"][k] for k in ("stock", "available", "held",  # type: ignore[index]
                                                                                       "sold")}}
                             for b, (tag, a) in enumerate(zip(layout.tags, audits))]
        return merged

    # -- rebalancing -----------------------------------------------------------------------

    async def rebalance(self) -> int:
        """One pass over every bucketed sale: finish stranded transfers, then fill empty buckets; units moved."""
        moved = 0
        for raw in await self.store.redis.smembers(SALES):
            sale_id = raw.decode()
            if "~" in sale_id:
                continue  # a bucket, not a sale
            try:
                layout = await self.layout(sale_id, fresh=True)
            except StrategyMoved:
                continue
            if layout is not None:
                moved += await self._rebalance(layout)
        return moved

    async def _rebalance(self, layout: Layout) -> int:
        got = await asyncio.gather(*(self.store.counters_of(tag) for tag in layout.tags))
        if any(g is None for g in got):
            return 0
        now = max(c["now_ms"] for c, _ in got)  # type: ignore[misc]
        for src, (_, sent) in enumerate(got):  # type: ignore[misc]
            for tid, record in sent.items():
                dst, qty, at_ms = record.split(":")
                if now - int(at_ms) > STRANDED_MS:
                    log.info("buckets: finishing transfer %s (%s units, bucket %d -> %s)", tid, qty, src, dst)
                    await self._deliver(layout, src, int(dst), tid, int(qty))
        avail = [c["available"] for c, _ in got]  # type: ignore[misc]
        moved = 0
        for empty in [b for b, units in enumerate(avail) if units == 0]:
            fullest = max(range(len(avail)), key=lambda b: avail[b])
            if avail[fullest] < 2:
                break
            units = await self.transfer(layout, fullest, empty, avail[fullest] // 2)
            avail[fullest] -= units
            avail[empty] += units
            moved += units
        return moved

    async def background(self, interval_s: float) -> None:
        """Forever: ``rebalance``; Redis outages are waited out (the reaper logs them)."""
        while True:
            try:
                await self.rebalance()
            except REDIS_DOWN:
                pass
            except Exception:  # noqa: BLE001 - a bug here must not stop the node's other loops
                log.exception("buckets: rebalancing failed")
            await asyncio.sleep(interval_s)


class Look(NamedTuple):
    """One bucket at one moment, as an order short in its home bucket sees it (lua/bucket_look.lua)."""

    available: int
    sends: int  # transfers the bucket ever sent: a change between two looks means units moved
    in_flight: int  # transfers it sent that are not yet confirmed


def nothing_elsewhere(first: list[Look], second: list[Look] | None, home: int) -> bool:
    """Whether two looks at every bucket, ``first`` wholly before ``second``, prove that at a moment
    between them no unit was available outside bucket ``home`` (but for one given back and taken
    again within its bucket's two reads; see the module docstring): both find every other bucket
    empty and no transfer in flight, and no bucket sent one in between (a unit moving from a bucket
    not yet read to one already read is seen in neither look, but its transfer is counted)."""
    if second is None or len(second) != len(first):
        return False
    for b, (one, two) in enumerate(zip(first, second)):
        if one.in_flight or two.in_flight or one.sends != two.sends:
            return False
        if b != home and (one.available or two.available):
            return False
    return True


def _released_sum(audits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The buckets' ``released`` lists as one: each bucket records the holds it gave back (its own
    prelude and reaper, in the releasing step), and an order lives in one bucket, so summing per
    order id only joins them; were an id in two buckets, its units would add up, not hide."""
    units: dict[str, int] = {}
    for a in audits:
        for row in a["released"]:
            units[row["order_id"]] = units.get(row["order_id"], 0) + row["qty"]
    return [{"order_id": oid, "qty": qty} for oid, qty in units.items()]


def _bucket_gone(reply: Reply) -> bool:
    """A bucket script found no sale under its keys: the sale was reset (or deleted) since the layout was read."""
    return reply.status == 404 and reply.body.get("error", {}).get("code") == "unknown_sale"
