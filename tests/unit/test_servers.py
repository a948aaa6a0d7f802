"""A node serves the same contract under either HTTP server, as one process that stops cleanly."""

from __future__ import annotations

import asyncio
import sys

import pytest

from reference_backend.node import cancel_and_wait
from reference_backend.servers import make_server


def test_an_unknown_server_is_refused():
    with pytest.raises(ValueError, match="server: must be one of granian, uvicorn"):
        make_server("apache", object(), host="127.0.0.1", port=1, backlog=1)


def test_cancel_and_wait_ends_a_loop_whose_first_cancel_wait_for_swallowed():
    """The SIGTERM hang: on 3.11 a cancel landing just as wait_for's inner call finished is
    lost (redis-py sends each command through wait_for), and the task's loop goes on."""

    async def scenario():
        async def quick():
            return "sent"

        rounds = []

        async def loop():  # like the reaper or the webhook forwarder: one command, a sleep
            while True:
                await asyncio.wait_for(quick(), 2)
                rounds.append(1)
                await asyncio.sleep(0.01)

        task = asyncio.create_task(loop())
        await asyncio.sleep(0)  # the loop is inside wait_for, its inner task scheduled
        await asyncio.sleep(0)  # the inner task finished; wait_for has not resumed yet
        await asyncio.wait_for(cancel_and_wait([task], recancel_s=0.05), 2)
        return task, rounds

    task, rounds = asyncio.run(scenario())
    assert task.cancelled()
    if sys.version_info < (3, 12):
        assert rounds  # the cancel came before the first round ended: it was swallowed, the loop went on
