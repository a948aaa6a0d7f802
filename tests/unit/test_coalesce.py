"""Request coalescing: the Coalescer alone (no Redis: a recording send). A real node is in
tests/integration/test_coalesce.py."""

from __future__ import annotations

import asyncio

import pytest

from reference_backend.coalesce import CoalesceConfig, Coalescer

def run(coro):
    return asyncio.run(coro)


async def until(condition, timeout: float = 5.0) -> None:
    """Yield to the event loop until ``condition()`` holds (fails after ``timeout`` seconds)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


def recording(fail: Exception | None = None, delay: float = 0.01):
    sent: list[tuple[object, list]] = []

    async def send(key, items):
        sent.append((key, list(items)))
        await asyncio.sleep(delay)  # a round trip: later requests queue up meanwhile
        if fail is not None:
            raise fail
        return [f"{key}:{item}" for item in items]

    return sent, send


def test_concurrent_requests_of_one_key_share_a_call_and_each_gets_its_own_result():
    sent, send = recording()

    async def main():
        c = Coalescer(send)
        results = await asyncio.gather(*(c.submit("s1", i) for i in range(5)), c.submit("s2", "x"))
        return c, results

    c, results = run(main())
    assert results == ["s1:0", "s1:1", "s1:2", "s1:3", "s1:4", "s2:x"]
    assert sorted((k, tuple(v)) for k, v in sent) == [("s1", (0, 1, 2, 3, 4)), ("s2", ("x",))]
    assert (c.batches, c.items) == (2, 6)


def test_requests_arriving_during_a_call_go_in_the_next_one_up_to_max_batch():
    sent, send = recording(delay=0.05)

    async def main():
        c = Coalescer(send, CoalesceConfig(max_batch=3))
        first = asyncio.ensure_future(c.submit("s", 0))
        await until(lambda: len(sent) == 1)  # the first call is in flight now
        rest = await asyncio.gather(*(c.submit("s", i) for i in range(1, 8)))
        return [await first, *rest]

    assert run(main()) == [f"s:{i}" for i in range(8)]
    assert [v for _, v in sent] == [[0], [1, 2, 3], [4, 5, 6], [7]]


def test_a_failed_call_fails_each_of_its_requests_and_the_next_batch_still_goes():
    async def main():
        calls = 0

        async def send(key, items):
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.01)
            if calls == 1:
                raise ConnectionError("redis down")
            return [f"ok {i}" for i in items]

        c = Coalescer(send)
        first = [asyncio.ensure_future(c.submit("s", i)) for i in range(3)]
        await until(lambda: calls == 1)  # the first batch is in flight
        later = asyncio.ensure_future(c.submit("s", 9))
        done = await asyncio.gather(*first, later, return_exceptions=True)
        return done

    done = run(main())
    assert [type(d) for d in done[:3]] == [ConnectionError] * 3
    assert done[3] == "ok 9"


def test_a_request_cancelled_before_its_batch_left_is_not_sent_and_a_wrong_count_fails_the_batch():
    sent, send = recording(delay=0.02)

    async def main():
        c = Coalescer(send, CoalesceConfig(window_us=20_000))
        gone = asyncio.ensure_future(c.submit("s", "gone"))
        kept = asyncio.ensure_future(c.submit("s", "kept"))
        await asyncio.sleep(0)  # one loop turn: both submits queue up; the 20 ms window sends nothing yet
        assert sent == []
        gone.cancel()
        result = await kept

        async def short(key, items):
            return items[:-1]

        bad = Coalescer(short)
        with pytest.raises(RuntimeError, match="2 requests sent, 1 results back"):
            await asyncio.gather(bad.submit("s", 1), bad.submit("s", 2))
        return result

    assert run(main()) == "s:kept"
    assert sent == [("s", ["kept"])]
    with pytest.raises(ValueError):
        Coalescer(send, CoalesceConfig(max_batch=0))
