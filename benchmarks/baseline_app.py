"""The baseline of the order-path benchmark: a bare app that does the one Lua call and nothing else.

``POST /v1/sales/{id}/orders`` runs a strategy's order script (``pre_deduct_order``
by default) through redis.asyncio with the same KEYS, ARGV and connection pool
settings as a reference node, and answers the script's status and order as JSON.
With ``--op pay`` it serves ``POST /v1/sales/{id}/orders/{order_id}/pay`` instead,
running the strategy's single pay script (``pre_deduct_pay``, ``order_deduct_pay``)
the way ``LuaStrategy.pay`` does.
No validation, no error mapping: what the reference backend spends beyond
this is what ``benchmarks/order_path.py`` measures. ``--server`` and
``--framework`` serve the same call other ways, to show why the reference
backend uses granian and no framework.

Usage::

    python benchmarks/baseline_app.py --port 8101 --redis-url redis://127.0.0.1:6379/0 \
        [--strategy pre_deduct --script pre_deduct_order] [--op order|pay] [--server granian|uvicorn] \
        [--framework bare|starlette|fastapi]
"""

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's reference_backend
from reference_backend import lua  # noqa: E402
from reference_backend.keys import SaleKeys  # noqa: E402
from reference_backend.store import Store  # noqa: E402


def make_order(redis_url: str, strategy: str, script: str):
    """``order(sale_id, body, key) -> (status, json bytes)``: the single Lua call."""
    store = Store.connect(redis_url)  # the node's pool settings: max 64, no retries
    call = store.redis.register_script(lua.source(script))

    async def order(sale_id: str, body: dict, key: str | None) -> tuple[int, bytes]:
        user, qty = body["user_id"], body["qty"]
        k = SaleKeys(sale_id)
        kind, payload = await call(
            keys=k.op_keys("order", key),
            args=[strategy, sale_id, "1" if key is not None else "0", f"{qty}:{user}", k.order_prefix, user, qty],
        )
        result = orjson.loads(payload.partition(b"\n")[2])
        return result["s"], orjson.dumps(result.get("o") or {"error": result.get("e")})

    return order


def make_pay(redis_url: str, strategy: str, script: str):
    """``pay(sale_id, order_id, key) -> (status, json bytes)``: the single Lua call of ``LuaStrategy.pay``."""
    store = Store.connect(redis_url)
    call = store.redis.register_script(lua.source(script))

    async def pay(sale_id: str, order_id: str, key: str | None) -> tuple[int, bytes]:
        k = SaleKeys(sale_id)
        kind, payload = await call(
            keys=k.op_keys("pay", key, order_id),
            args=[strategy, sale_id, "1" if key is not None else "0", order_id, k.order_prefix, order_id],
        )
        result = orjson.loads(payload.partition(b"\n")[2])
        return result["s"], orjson.dumps(result.get("o") or {"error": result.get("e")})

    return pay


def bare_pay(pay):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:  # no body expected; drain whatever came
            message = await receive()
            more = message.get("more_body", False)
        key = next((v.decode() for k, v in scope["headers"] if k == b"idempotency-key"), None)
        parts = scope["path"].split("/")  # "", v1, sales, {id}, orders, {order_id}, pay
        status, out = await pay(parts[3], parts[5], key)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})

    return app


def bare(order):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        key = next((v.decode() for k, v in scope["headers"] if k == b"idempotency-key"), None)
        status, out = await order(scope["path"].split("/")[3], orjson.loads(body), key)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})

    return app


def starlette(order):
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def endpoint(request):
        status, out = await order(request.path_params["sale_id"], orjson.loads(await request.body()),
                                  request.headers.get("idempotency-key"))
        return Response(out, status, media_type="application/json")

    return Starlette(routes=[Route("/v1/sales/{sale_id}/orders", endpoint, methods=["POST"])])


def fastapi(order):  # (no "from __future__ import annotations" here: FastAPI reads these at run time)
    from fastapi import FastAPI, Header, Response
    from pydantic import BaseModel

    class OrderIn(BaseModel):
        user_id: str
        qty: int

    api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @api.post("/v1/sales/{sale_id}/orders")
    async def place(sale_id: str, body: OrderIn, idempotency_key: str | None = Header(None)) -> Response:
        status, out = await order(sale_id, body.model_dump(), idempotency_key)
        return Response(out, status, media_type="application/json")

    return api


FRAMEWORKS = {"bare": bare, "starlette": starlette, "fastapi": fastapi}


async def serve(args: argparse.Namespace) -> None:
    if args.op == "pay":
        if args.framework != "bare":
            raise SystemExit("--op pay: only --framework bare")
        app = bare_pay(make_pay(args.redis_url, args.strategy, args.script))
    else:
        app = FRAMEWORKS[args.framework](make_order(args.redis_url, args.strategy, args.script))
    if args.server == "uvicorn":
        import uvicorn

        config = uvicorn.Config(app, host=args.host, port=args.port, loop="asyncio", http="httptools",
                                lifespan="off", log_level="warning", access_log=False, backlog=1024)
        await uvicorn.Server(config).serve()  # SIGTERM: uvicorn's own clean shutdown
        return
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server

    # exactly as reference_backend/node.py serves a node
    server = Server(app, address=args.host, port=args.port, interface=Interfaces.ASGINL, http=HTTPModes.http1,
                    websockets=False, backlog=1024, log_level=LogLevels.warning)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    await server.serve()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis-url", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--strategy", default="pre_deduct")
    p.add_argument("--script", default="pre_deduct_order")
    p.add_argument("--op", choices=("order", "pay"), default="order")
    p.add_argument("--server", choices=("granian", "uvicorn"), default="granian")
    p.add_argument("--framework", choices=tuple(FRAMEWORKS), default="bare")
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
