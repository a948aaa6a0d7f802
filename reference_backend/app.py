"""The HTTP contract as a bare ASGI app (no framework: it would cost throughput).

Routing, body limits, content types, admin auth and error mapping live here;
what an order, a payment or a cancel does lives in the strategies.

Usage::

    app = App(store, strategies, node_name="n1", admin_token="secret")
    # serve with any ASGI server; __main__.py runs uvicorn's (or granian's) in its own loop
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import re
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
from redis import exceptions as rx

from . import validate
from .clock import node_now_ms
from .errors import REDIS_DOWN, ApiError, StrategyMoved, bad_request, error_body
from .keys import SaleKeys
from .ledger import NotInTransit, UnknownSale
from .policy import profiles_from_body
from .replies import Reply
from .sale import SaleConfig
from .store import Store
from .strategies import Strategy
from .warehouse import Warehouse

log = logging.getLogger("reference_backend")

MAX_BODY = 16 * 1024
OPENAPI_PATH = Path(__file__).parent / "openapi.yaml"

# the error replies that heal; redis-py prefixes a pipeline's error with the command's
# place in the pipeline ("Command # 3 (...) of pipeline caused error: ('LOADING ...',)")
TRANSIENT_REPLY = re.compile(r"(?:^|caused error: \(?['\"]?)(?:BUSY|LOADING|MASTERDOWN|NOREPLICAS)\b")

T = TypeVar("T")
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class ClientGone(Exception):
    """The client hung up before its body arrived: there is no one to answer."""


class Request:
    """One HTTP request: method, path, headers, and a size-limited body read on demand."""

    __slots__ = ("method", "path", "headers", "_receive")

    def __init__(self, scope: dict[str, Any], receive: Receive) -> None:
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            self.headers.setdefault(name.lower(), value)  # the first of repeated headers wins
        self._receive = receive

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None

    async def body(self) -> bytes:
        declared = self.header(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                raise bad_request("Content-Length: must be a non-negative integer")
            if int(declared) > MAX_BODY:
                raise ApiError(413, "payload_too_large", f"body: larger than {MAX_BODY} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                raise ApiError(413, "payload_too_large", f"body: larger than {MAX_BODY} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def json_object(self, *, required: bool) -> dict[str, Any]:
        """The body as a JSON object; an empty body is ``{}`` when not required."""
        raw = await self.body()
        if not raw.strip():
            if required:
                raise bad_request("body: required, a JSON object")
            return {}
        media = (self.header(b"content-type") or "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            raise ApiError(
                415, "unsupported_media_type", f"Content-Type: must be application/json, got {media or 'none'!r}"
            )
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            # orjson refuses integers past 64 bits; the stdlib parses them, so a huge
            # qty gets a message naming qty instead of "malformed JSON"
            try:
                body = json.loads(raw, parse_constant=_no_constant)
                # the stdlib also takes a lone surrogate (\ud800), which is no text: it
                # could be neither stored nor answered (orjson refuses it, as here)
                json.dumps(body, ensure_ascii=False).encode()
            except (ValueError, RecursionError):
                raise bad_request(f"body: malformed JSON ({e})") from None
        if not isinstance(body, dict):
            raise bad_request(f"body: must be a JSON object, got {validate.type_name(body)}")
        return body

    def idempotency_key(self) -> str | None:
        return validate.idempotency_key(self.header(b"idempotency-key"))


class App:
    """The contract (docs/internals.md section 1) over one node's ``Store`` and strategies."""

    def __init__(
        self, store: Store, strategies: dict[str, Strategy], *, node_name: str, admin_token: str,
        warehouse: Warehouse | None = None, rounds: Counter[str] | None = None,
    ) -> None:
        self.store = store
        # completed passes of the node's background loops (reaper, monitor, webhook), for
        # GET /v1/health: a test waits on them instead of sleeping through "several ticks"
        self.rounds: Counter[str] = rounds if rounds is not None else Counter()
        self.strategies = strategies
        self.warehouse = warehouse  # the warehouse ledger, when the node was started with --ledger
        self.node_name = node_name
        self._node_header = node_name.encode()
        self._admin = f"Bearer {admin_token}".encode()
        self._openapi = OPENAPI_PATH.read_bytes()
        # sale -> strategy name: saves a round trip per request; every script checks
        # the sale's real strategy and a mismatch (StrategyMoved) refreshes the entry
        self._strategy_of: dict[str, str] = {}

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # only under servers that speak lifespan (uvicorn)
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        extra: tuple[tuple[bytes, bytes], ...] = ()
        try:
            reply = await self.route(request)
        except ApiError as e:
            reply, extra = Reply(e.status, e.body()), e.headers
        except REDIS_DOWN as e:
            reply = _unavailable(e)
        except ClientGone:
            return
        except Exception as e:
            if isinstance(e, rx.ResponseError) and TRANSIENT_REPLY.search(str(e)):
                reply = _unavailable(e)
            else:  # a bug: say so loudly, never dress it up as a contract answer
                log.exception("internal error on %s %s", request.method, request.path)
                reply = Reply(500, error_body("internal", f"server: internal error ({type(e).__name__})"))
        if isinstance(reply.body, bytes):
            body, ctype = reply.body, b"application/yaml"
        else:
            body, ctype = orjson.dumps(reply.body), b"application/json"
        headers = [
            (b"content-type", ctype),
            (b"content-length", str(len(body)).encode()),
            (b"x-oversold-node", self._node_header),
            *extra,
        ]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def route(self, req: Request) -> Reply:
        parts = req.path.split("/")
        if len(parts) < 3 or parts[0] != "" or parts[1] != "v1":
            raise _not_found(req)
        rest = parts[2:]
        match rest:
            case ["health"]:
                _allow(req, "GET")
                return Reply(200, {"status": "ok", "node": self.node_name, "rounds": dict(self.rounds),
                                   "clock_ms": node_now_ms()})
            case ["openapi.yaml"]:
                _allow(req, "GET")
                return Reply(200, self._openapi)  # type: ignore[arg-type]  # bytes: sent as YAML
            case ["sales", sale]:
                _allow(req, "GET", "PUT")
                sale_id = validate.sale_id(sale)
                if req.method == "PUT":
                    return await self.put_sale(req, sale_id)
                counters = await self._dispatch(sale_id, lambda s: s.counters(sale_id))
                if counters is None:
                    raise _unknown_sale(sale_id)
                return Reply(200, await self._more_counters(sale_id, counters))
            case ["sales", sale, "audit"]:
                _allow(req, "GET")
                sale_id = validate.sale_id(sale)
                self._admin_only(req)
                audit = await self._dispatch(sale_id, lambda s: s.audit(sale_id))
                if audit is None:
                    raise _unknown_sale(sale_id)
                if self.warehouse is not None:  # what the warehouse recorded, for ledger_no_oversell
                    audit["ledger"] = await self.warehouse.audit(sale_id)
                return Reply(200, audit)
            case ["sales", sale, "orders"]:
                _allow(req, "POST")
                sale_id = validate.sale_id(sale)
                body = await req.json_object(required=True)
                user_id = validate.user_id_field(body)
                qty = validate.int_field(body, "qty", minimum=1)
                key = req.idempotency_key()
                return await self._dispatch(sale_id, lambda s: s.order(sale_id, user_id, qty, key))
            case ["sales", sale, "orders", order]:
                _allow(req, "GET")
                sale_id, order_id = validate.sale_id(sale), validate.order_id(order)
                return await self._rejection(sale_id, await self._dispatch(
                    sale_id, lambda s: s.get_order(sale_id, order_id)))
            case ["sales", sale, ("restock" | "in_transit" | "receive") as change]:
                _allow(req, "POST")
                sale_id = validate.sale_id(sale)
                self._admin_only(req)
                qty = validate.int_field(await req.json_object(required=True), "qty", minimum=1)
                return await self.warehouse_change(sale_id, change, qty)
            case ["sales", sale, "orders", order, ("pay" | "cancel") as op]:
                _allow(req, "POST")
                sale_id, order_id = validate.sale_id(sale), validate.order_id(order)
                await req.json_object(required=False)  # no fields; a body, if any, must still be JSON
                key = req.idempotency_key()
                if op == "pay":
                    return await self._dispatch(sale_id, lambda s: s.pay(sale_id, order_id, key))
                return await self._dispatch(sale_id, lambda s: s.cancel(sale_id, order_id, key))
            case ["sales", sale, "orders", order, "refund"]:
                _allow(req, "POST")
                sale_id, order_id = validate.sale_id(sale), validate.order_id(order)
                self._admin_only(req)
                await req.json_object(required=False)
                key = req.idempotency_key()
                return await self._dispatch(sale_id, lambda s: s.refund(sale_id, order_id, key))
            case ["sales", sale, "profiles"]:
                _allow(req, "PUT")
                sale_id = validate.sale_id(sale)
                self._admin_only(req)
                body = await req.json_object(required=True)
                if "profiles" not in body:
                    raise bad_request("profiles: required, an object of user id -> profile")
                total = await self.store.load_profiles(sale_id, profiles_from_body(body["profiles"]))
                if total is None:
                    raise _unknown_sale(sale_id)
                return Reply(200, {"sale_id": sale_id, "loaded": len(body["profiles"]), "profiles": total})
        raise _not_found(req)

    async def put_sale(self, req: Request, sale_id: str) -> Reply:
        self._admin_only(req)
        cfg = SaleConfig.from_body(await req.json_object(required=True), strategies=self.strategies)
        strategy = self.strategies[cfg.strategy]
        if strategy.needs_ledger and self.warehouse is None:  # a well-formed request this node cannot serve
            raise ApiError(409, "no_ledger", f"strategy: {cfg.strategy} needs the warehouse ledger and this node "
                                             f"has none (start it with --ledger PATH)")
        if cfg.async_orders and not strategy.supports_async:
            raise bad_request(f"async_orders: strategy {cfg.strategy} cannot queue orders")
        if self.warehouse is not None and not strategy.ledger_sync:
            # a well-formed request this node cannot serve (as no_ledger): 409, not the 400 of bad input
            raise ApiError(409, "not_synced", f"strategy: {cfg.strategy} sales are not synced with the warehouse "
                                              f"ledger; create it on a node without --ledger")
        if self.warehouse is not None:  # the ledger first: a front sale is never synced to no warehouse sale
            cfg = dataclasses.replace(cfg, epoch=await self.warehouse.create_sale(sale_id, cfg.stock))
        counters = await strategy.put_sale(sale_id, cfg)
        self._strategy_of[sale_id] = cfg.strategy
        return Reply(200, await self._more_counters(sale_id, counters))

    async def _more_counters(self, sale_id: str, counters: dict[str, Any]) -> dict[str, Any]:
        """The counters plus, for an async sale, its queue; with a ledger, the warehouse and the sync lag."""
        k = SaleKeys(sale_id)
        async with self.store.redis.pipeline(transaction=False) as p:
            p.hget(k.meta, "async_orders")
            p.xlen(k.order_queue)
            async_orders, queued = await p.execute()
        if async_orders == b"1":
            # processed entries are deleted, so the queue's length is the orders not yet applied
            counters.update(async_orders=True, queued=int(queued))
        if self.warehouse is not None:
            counters.update(await self.warehouse.counters(sale_id))
        return counters

    async def _rejection(self, sale_id: str, reply: Reply) -> Reply:
        """A queued order its processor turned down shows why (``error``, as in an error answer)."""
        if reply.body.get("status") == "rejected":
            code, message = await self.store.redis.hmget(
                SaleKeys(sale_id).order(reply.body["order_id"]), "error_code", "error_message")
            reply.body["error"] = {"code": (code or b"").decode(), "message": (message or b"").decode()}
        return reply

    async def warehouse_change(self, sale_id: str, change: str, qty: int) -> Reply:
        """Restock, in transit or receive: the ledger now, the front when the sync worker applies it."""
        if self.warehouse is None:
            raise ApiError(409, "no_ledger", f"ledger: this node has no warehouse ledger, so no {change} "
                                             f"(start it with --ledger PATH)")
        if await self.store.strategy_of(sale_id) is None:  # a change the front could never receive
            raise _unknown_sale(sale_id)
        try:
            c = await self.warehouse.change(sale_id, change, qty)
        except UnknownSale:
            raise ApiError(404, "unknown_sale", f"sale_id: no sale {sale_id} in the warehouse ledger") from None
        except NotInTransit as e:
            raise ApiError(409, "not_in_transit", str(e)) from None
        except sqlite3.Error as e:
            raise ApiError(503, "unavailable", f"ledger: unavailable, outcome unknown ({e})") from None
        return Reply(200, {"sale_id": sale_id, "change": change, "qty": qty, "warehouse": c.as_dict()})

    async def _dispatch(self, sale_id: str, call: Callable[[Strategy], Awaitable[T]]) -> T:
        name = self._strategy_of.get(sale_id)
        for _ in range(3):  # a sale reset to another strategy mid-request: follow it
            if name is None:
                name = await self.store.strategy_of(sale_id)
                if name is None:
                    raise _unknown_sale(sale_id)
            strategy = self.strategies.get(name)
            if strategy is None:
                raise ApiError(503, "unavailable", f"strategy: sale {sale_id} uses {name!r}, unknown to this node")
            self._strategy_of[sale_id] = name
            try:
                return await call(strategy)
            except StrategyMoved as moved:
                name = moved.actual
        raise ApiError(503, "unavailable", f"strategy: sale {sale_id} keeps changing strategy")

    def _admin_only(self, req: Request) -> None:
        given = req.headers.get(b"authorization", b"")
        if not hmac.compare_digest(given, self._admin):
            raise ApiError(
                401, "unauthorized", "Authorization: admin endpoint, needs 'Bearer <admin token>'",
                headers=((b"www-authenticate", b'Bearer realm="oversold"'),),
            )


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # the stdlib would accept NaN and Infinity


def _allow(req: Request, *methods: str) -> None:
    if req.method not in methods:
        raise ApiError(
            405, "method_not_allowed", f"method: {req.method} not allowed on {req.path}, use {', '.join(methods)}",
            headers=((b"allow", ", ".join(methods).encode()),),
        )


def _not_found(req: Request) -> ApiError:
    return ApiError(404, "not_found", f"path: no route {req.path[:200]}")


def _unknown_sale(sale_id: str) -> ApiError:
    return ApiError(404, "unknown_sale", f"sale_id: no sale {sale_id}")


def _unavailable(e: BaseException) -> Reply:
    log.warning("redis unavailable: %s: %s", type(e).__name__, e)
    return Reply(503, error_body("unavailable", f"redis: unavailable, outcome unknown ({type(e).__name__})"))
