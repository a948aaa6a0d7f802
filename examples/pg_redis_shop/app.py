"""A flash-sale API over PostgreSQL and Redis: the kind of backend oversold is pointed at. Not part of oversold.

Orders live in PostgreSQL; Redis holds a cached "stock left" that the busy
endpoints check first, as many shops do to spare the database. One request buys
(no hold, no separate payment) and answers with the shop's own order id.

- ``POST /api/buy``: the database decides: ``UPDATE items SET stock = stock - qty
  WHERE id = %s AND stock >= qty`` and the order row, in one transaction; the
  Redis cache is only refreshed afterwards. Correct: it cannot oversell.
- ``POST /api/buy-fast``: Redis decides: it ``GET``s the cached stock, and when
  enough is left calls the (pretend) payment provider, ``SET``s the cache to what
  it read minus its quantity and writes the order row. Deliberately broken: a
  read-modify-write without a lock or a script, so buyers that read the same
  cached stock all buy and overwrite each other's decrement: it oversells under load.

- ``POST /api/buy-locked``: a Redis lock (``SET NX PX ttl``) around a read, a
  payment provider call and a write of the stock in PostgreSQL. Sound while the
  lock holder runs, and broken exactly when it stalls longer than the lock's TTL
  (a GC pause, a stopped VM, SIGSTOP): the lock lapses, another buyer takes it,
  reads the same stock, and the holder wakes up to write its stale count.

``GET /api/items/{id}`` answers ``{"id", "stock_left"}``; ``GET /health`` is
liveness. Errors are FastAPI-shaped ``{"detail": "..."}``; a database or Redis
error is a 503. No admin API: the schema and the sale are set up in the database
and the cache (see ``shop_adapter.py``). It connects lazily (one connection per
thread, made again after an error), so it can start before its database.

Usage::

    python app.py --dsn "host=127.0.0.1 port=5432 dbname=shop user=shop" \\
        --redis redis://127.0.0.1:6379/0 --port 8080        # listens on 127.0.0.1 only
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import redis

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, stock INTEGER NOT NULL, initial INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (id BIGSERIAL PRIMARY KEY, item TEXT NOT NULL, user_id TEXT NOT NULL,
                                   qty INTEGER NOT NULL, created TIMESTAMPTZ NOT NULL DEFAULT now());
"""
PROVIDER_S = 0.003  # the payment provider's round trip, between a check and its write
LOCK_WAIT_S = 5.0  # how long a buyer waits for the lock before answering 503
# compare-and-delete: only the holder's own token releases the lock
RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def cache_key(item: str) -> str:
    return f"stock:{item}"


class Shop:
    def __init__(self, dsn: str, redis_url: str, lock_ttl_ms: int = 500) -> None:
        self.dsn = dsn
        self.lock_ttl_ms = lock_ttl_ms
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=5)
        self.local = threading.local()

    def db(self) -> psycopg.Connection:
        conn = getattr(self.local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self.local.conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
        return conn

    def buy(self, item: str, user: str, qty: int) -> tuple[int, dict]:
        conn = self.db()
        with conn.transaction():
            row = conn.execute("UPDATE items SET stock = stock - %s WHERE id = %s AND stock >= %s RETURNING stock",
                               (qty, item, qty)).fetchone()
            if row is None:
                return self._refusal(item)
            oid = conn.execute("INSERT INTO orders (item, user_id, qty) VALUES (%s, %s, %s) RETURNING id",
                               (item, user, qty)).fetchone()[0]
        self.redis.set(cache_key(item), row[0])
        return 200, {"order_id": oid, "item": item, "qty": qty}

    def buy_fast(self, item: str, user: str, qty: int) -> tuple[int, dict]:
        left = self.redis.get(cache_key(item))
        if left is None or int(left) < qty:
            return self._refusal(item)
        time.sleep(PROVIDER_S)  # every buyer that read the same stock gets here
        self.redis.set(cache_key(item), int(left) - qty)
        conn = self.db()
        with conn.transaction():
            conn.execute("UPDATE items SET stock = stock - %s WHERE id = %s", (qty, item))
            oid = conn.execute("INSERT INTO orders (item, user_id, qty) VALUES (%s, %s, %s) RETURNING id",
                               (item, user, qty)).fetchone()[0]
        return 200, {"order_id": oid, "item": item, "qty": qty}

    def buy_locked(self, item: str, user: str, qty: int) -> tuple[int, dict]:
        lock, token = f"lock:{item}", uuid.uuid4().hex
        deadline = time.monotonic() + LOCK_WAIT_S
        while not self.redis.set(lock, token, nx=True, px=self.lock_ttl_ms):
            if time.monotonic() > deadline:
                return 503, {"detail": "busy"}
            time.sleep(0.002)
        try:
            conn = self.db()
            row = conn.execute("SELECT stock FROM items WHERE id = %s", (item,)).fetchone()
            if row is None or row[0] < qty:
                return self._refusal(item)
            time.sleep(PROVIDER_S)
            with conn.transaction():
                conn.execute("UPDATE items SET stock = %s WHERE id = %s", (row[0] - qty, item))
                oid = conn.execute("INSERT INTO orders (item, user_id, qty) VALUES (%s, %s, %s) RETURNING id",
                                   (item, user, qty)).fetchone()[0]
            return 200, {"order_id": oid, "item": item, "qty": qty}
        finally:
            self.redis.eval(RELEASE, 1, lock, token)

    def item(self, item: str) -> tuple[int, dict]:
        row = self.db().execute("SELECT stock FROM items WHERE id = %s", (item,)).fetchone()
        return (404, {"detail": "No such item"}) if row is None else (200, {"id": item, "stock_left": row[0]})

    def _refusal(self, item: str) -> tuple[int, dict]:
        exists = self.db().execute("SELECT 1 FROM items WHERE id = %s", (item,)).fetchone()
        return (409, {"detail": "Sold out"}) if exists else (404, {"detail": "No such item"})


def handler(shop: Shop) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                return self._send(200, {"status": "ok"})
            m = re.fullmatch(r"/api/items/([A-Za-z0-9_-]+)", self.path)
            if m is None:
                return self._send(404, {"detail": "Not Found"})
            return self._send(*shop.item(m.group(1)))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"null")
                item, user, qty = body["item"], body["user"], body.get("qty", 1)
                if not (isinstance(item, str) and isinstance(user, str) and isinstance(qty, int) and qty > 0):
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                return self._send(422, {"detail": "item (str), user (str) and qty (int > 0) are required"})
            try:
                if self.path == "/api/buy":
                    return self._send(*shop.buy(item, user, qty))
                if self.path == "/api/buy-fast":
                    return self._send(*shop.buy_fast(item, user, qty))
                if self.path == "/api/buy-locked":
                    return self._send(*shop.buy_locked(item, user, qty))
            except (psycopg.Error, redis.RedisError) as e:
                return self._send(503, {"detail": f"unavailable: {type(e).__name__}"})
            return self._send(404, {"detail": "Not Found"})

    return Handler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--redis", required=True)
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--lock-ttl-ms", type=int, default=500, help="TTL of /api/buy-locked's Redis lock")
    args = ap.parse_args()
    # no connection at start: the database may come up (or be fronted by a proxy) after the shop;
    # the schema is the setup's job (shop_adapter.py creates it before a run)
    server = ThreadingHTTPServer((args.host, args.port), handler(Shop(args.dsn, args.redis, args.lock_ttl_ms)))
    server.daemon_threads = True
    print(f"shop listening on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
