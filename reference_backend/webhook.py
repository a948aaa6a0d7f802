"""Inventory warnings to a webhook: each warning of the stream POSTed once, best effort.

The warnings themselves are written by the Lua step that moves stock (see
``warn_crossings`` in ``lua/_sale.lua``) to the sale's stream
``os:{S}:warnings``; that stream is the record. This task only forwards it: a
consumer group ``webhook`` per sale shares the entries among the nodes, so each
entry is posted by one node. An entry is acknowledged after one attempt,
whatever its outcome (best effort: a webhook that is down misses it, the
stream still has it). The URL must be a loopback ``http://`` URL: the
reference backend never calls out of the machine.

Usage::

    url = webhook_url_field({"warn_webhook_url": "http://127.0.0.1:9000/hook"})
    asyncio.create_task(forward_warnings(store, "n1", interval_s=0.1))
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from redis import exceptions as rx

from .errors import REDIS_DOWN, bad_request
from .keys import SALES, SaleKeys
from .validate import type_name

log = logging.getLogger("reference_backend")

GROUP = "webhook"
POST_TIMEOUT_S = 2.0


# The same pattern is the contract's (openapi.yaml SaleConfig.warn_webhook_url), so a
# client can check a URL before sending it: the host is `localhost`, a dotted 127.x.y.z
# or [::1]; the port 1-65535; the path printable ASCII (it goes into the request line).
WEBHOOK_URL_PATTERN = (
    r"^http://(localhost|127(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}|\[::1\])"
    r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9][0-9]|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?"
    r"(/[!-~]*)?$"
)
_WEBHOOK_URL = re.compile(WEBHOOK_URL_PATTERN)


def webhook_url_field(body: dict[str, Any], name: str = "warn_webhook_url") -> str | None:
    """A loopback http URL, or None when missing or null."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name}: must be a string, got {type_name(value)}")
    if len(value) > 2048:
        raise bad_request(f"{name}: at most 2048 characters")
    if not _WEBHOOK_URL.fullmatch(value):  # fullmatch: '$' alone would let a trailing newline through
        raise bad_request(f"{name}: must be a loopback URL http://<localhost|127.x.y.z|[::1]>[:port][/path], "
                          f"got {value[:200]!r}")
    return value


async def forward_warnings(store: Any, node_name: str, interval_s: float,
                           rounds: Counter[str] | None = None) -> None:
    """Forever: post new warnings of every sale that has a webhook URL.

    ``rounds["webhook"]`` counts the completed passes (shown by ``GET /v1/health``).
    """
    while True:
        try:
            await forward_once(store.redis, node_name)
            if rounds is not None:
                rounds["webhook"] += 1
        except REDIS_DOWN:
            pass  # the reaper logs outages; warnings wait in the stream
        except rx.ResponseError as e:
            log.warning("webhook: redis refused: %s", e)
        await asyncio.sleep(interval_s)


async def forward_once(redis: Any, node_name: str) -> int:
    """One pass over every sale; returns how many warnings it posted (or tried to)."""
    posted = 0
    for raw in await redis.smembers(SALES):
        sale_id = raw.decode()
        k = SaleKeys(sale_id)
        url = await redis.hget(k.meta, "warn_webhook_url")
        if not url:
            continue
        try:
            got = await redis.xreadgroup(GROUP, node_name, {k.warnings: ">"}, count=100)
        except rx.ResponseError as e:
            if "NOGROUP" in str(e):
                continue  # the sale was reset meanwhile
            raise
        for _stream, entries in got:
            for entry_id, fields in entries:
                event = {"event": "inventory_warning", "sale_id": sale_id, "id": entry_id.decode(),
                         **{key.decode(): _num(value) for key, value in fields.items()}}
                try:
                    status = await post_json(url.decode(), event)
                    if status >= 300:
                        log.warning("webhook: %s answered %s for warning %s", url.decode(), status, event["id"])
                except (OSError, asyncio.TimeoutError, ValueError, IndexError) as e:
                    log.warning("webhook: posting warning %s to %s failed: %s", event["id"], url.decode(), e)
                await redis.xack(k.warnings, GROUP, entry_id)
                posted += 1
    return posted


async def post_json(url: str, body: dict[str, Any]) -> int:
    """POST one JSON body over a fresh HTTP/1.1 connection; the response status."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    data = json.dumps(body).encode()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), POST_TIMEOUT_S)
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), POST_TIMEOUT_S)
        return int(status_line.split()[1])
    finally:
        writer.close()


def _num(value: bytes) -> int | str:
    text = value.decode()
    return int(text) if text.lstrip("-").isdigit() else text
