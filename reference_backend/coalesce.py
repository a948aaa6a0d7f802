"""Request coalescing: orders that arrive together for one sale go to Redis as one script call.

A hot sale's orders all run one Lua script on one key; sent one by one, each
pays a Redis round trip (a pool checkout, a write, a read, a reply parsed) and
Redis pays a script call. ``Coalescer`` queues the requests of one key (the
strategy and sale) and has one drain task send them in batches: the first
request of a quiet key goes out on the next turn of the event loop (with
``window_us`` 0), and whatever arrives while a batch is in flight goes in the
next one, up to ``max_batch``. So a batch grows with the load and a lone
request waits for nothing; ``window_us`` trades latency for larger batches.

Each request still gets its own result (or the batch's exception: Redis down is
a 503 for every order of that batch, their outcome unknown, as it would be one
by one). A request cancelled before its batch was sent is left out.

Usage::

    async def send(key, items):            # one Redis call for all of them
        return [f"placed {item}" for item in items]

    coalescer = Coalescer(send, CoalesceConfig(window_us=0, max_batch=64))
    result = await coalescer.submit(("pre_deduct_coalesced", "s1"), "order-1")
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True, slots=True)
class CoalesceConfig:
    """How a node batches orders (``--coalesce-window-us``, ``--coalesce-max``)."""

    window_us: int = 0  # wait this long for more requests before a key's first batch (0: the next loop turn)
    max_batch: int = 64  # requests per script call; 1 turns coalescing off (one call per request)


class Coalescer(Generic[Item, Result]):
    """Batches of concurrent ``submit`` calls per key, sent by ``send(key, items) -> results``."""

    def __init__(self, send: Callable[[Hashable, list[Item]], Awaitable[Sequence[Result]]],
                 config: CoalesceConfig = CoalesceConfig()) -> None:
        if config.max_batch < 1 or config.window_us < 0:
            raise ValueError(f"coalesce: max_batch must be >= 1 and window_us >= 0, got {config}")
        self._send = send
        self._config = config
        self._waiting: dict[Hashable, list[tuple[Item, asyncio.Future[Result]]]] = {}
        self._drains: dict[Hashable, asyncio.Task[None]] = {}  # referenced, so no drain is collected mid-run
        self.batches = 0  # batches sent so far (a figure for tests and benchmarks)
        self.items = 0  # requests sent so far

    async def submit(self, key: Hashable, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Result] = loop.create_future()
        self._waiting.setdefault(key, []).append((item, done))
        if key not in self._drains:
            self._drains[key] = loop.create_task(self._drain(key))
        return await done

    async def _drain(self, key: Hashable) -> None:
        try:
            if self._config.window_us:
                await asyncio.sleep(self._config.window_us / 1e6)
            queue = self._waiting[key]
            while queue:
                batch = queue[: self._config.max_batch]
                del queue[: self._config.max_batch]
                batch = [(item, done) for item, done in batch if not done.done()]  # cancelled: nobody waits
                if not batch:
                    continue
                self.batches += 1
                self.items += len(batch)
                try:
                    results = await self._send(key, [item for item, _ in batch])
                except Exception as e:  # noqa: BLE001 - each waiter gets it, as its own call would have
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(e)
                    continue
                except BaseException:  # cancelled (node shutdown): so are the requests of this batch
                    for _, done in batch:
                        done.cancel()
                    raise
                if len(results) != len(batch):
                    error = RuntimeError(f"coalesce: {len(batch)} requests sent, {len(results)} results back")
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(error)
                    continue
                for (_, done), result in zip(batch, results):
                    if not done.done():
                        done.set_result(result)
        finally:
            # no await between the last look at the queue and here: a submit either found
            # this drain running (its item was taken above) or finds none and starts one
            del self._drains[key]
            if not self._waiting.get(key):
                self._waiting.pop(key, None)
            else:  # cancelled (node shutdown) with requests left: they get the cancellation too
                for _, done in self._waiting.pop(key):
                    if not done.done():
                        done.cancel()
