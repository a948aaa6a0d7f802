"""A small shop's flash-sale API over SQLite: the kind of backend oversold is pointed at. Not part of oversold.

One request buys (no hold, no separate payment) and answers with the shop's own
order id. Two endpoints do it:

- ``POST /api/buy``: a conditional ``UPDATE ... WHERE stock >= qty`` and the order
  row in one ``BEGIN IMMEDIATE`` transaction. Correct: it cannot oversell.
- ``POST /api/buy-unsafe``: reads the stock, waits for a (pretend) payment
  provider, then writes ``stock = read - qty``. Deliberately broken: two buyers
  who read the same stock both buy, so it oversells under load.

``GET /api/items/{id}`` answers ``{"id", "stock_left"}``; ``GET /health`` is
liveness. Errors are FastAPI-shaped: ``{"detail": "..."}``. The shop has no
admin API: the sale is set up in its database (see ``shop_adapter.py``).

Usage::

    python app.py --db shop.db --port 8080        # listens on 127.0.0.1 only
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, stock INTEGER NOT NULL, initial INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT NOT NULL,
                                   user_id TEXT NOT NULL, qty INTEGER NOT NULL, created REAL NOT NULL);
"""
PROVIDER_S = 0.003  # the unsafe endpoint's wait between its read and its write


def connect(db: str) -> sqlite3.Connection:
    """One connection per thread, autocommit (transactions are explicit), WAL so readers never block."""
    conn = sqlite3.connect(db, timeout=10, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.executescript(SCHEMA)
    return conn


class Shop:
    def __init__(self, db: str) -> None:
        self.db = db
        self.local = threading.local()

    def conn(self) -> sqlite3.Connection:
        if not hasattr(self.local, "conn"):
            self.local.conn = connect(self.db)
        return self.local.conn

    def buy(self, item: str, user: str, qty: int) -> tuple[int, dict]:
        c = self.conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            if c.execute("UPDATE items SET stock = stock - ? WHERE id = ? AND stock >= ?",
                         (qty, item, qty)).rowcount == 0:
                c.execute("ROLLBACK")
                return self._refusal(item)
            oid = c.execute("INSERT INTO orders (item, user_id, qty, created) VALUES (?, ?, ?, ?)",
                            (item, user, qty, time.time())).lastrowid
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return 200, {"order_id": oid, "item": item, "qty": qty}

    def buy_unsafe(self, item: str, user: str, qty: int) -> tuple[int, dict]:
        c = self.conn()
        row = c.execute("SELECT stock FROM items WHERE id = ?", (item,)).fetchone()
        if row is None or row[0] < qty:
            return self._refusal(item)
        time.sleep(PROVIDER_S)  # the payment provider's round trip: another buyer reads the same stock
        c.execute("UPDATE items SET stock = ? WHERE id = ?", (row[0] - qty, item))
        oid = c.execute("INSERT INTO orders (item, user_id, qty, created) VALUES (?, ?, ?, ?)",
                        (item, user, qty, time.time())).lastrowid
        return 200, {"order_id": oid, "item": item, "qty": qty}

    def item(self, item: str) -> tuple[int, dict]:
        row = self.conn().execute("SELECT stock FROM items WHERE id = ?", (item,)).fetchone()
        return (404, {"detail": "No such item"}) if row is None else (200, {"id": item, "stock_left": row[0]})

    def _refusal(self, item: str) -> tuple[int, dict]:
        exists = self.conn().execute("SELECT 1 FROM items WHERE id = ?", (item,)).fetchone()
        return (409, {"detail": "Sold out"}) if exists else (404, {"detail": "No such item"})


def handler(shop: Shop) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the load generator expects

        def log_message(self, *args: object) -> None:  # quiet: thousands of requests
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
            if self.path == "/api/buy":
                return self._send(*shop.buy(item, user, qty))
            if self.path == "/api/buy-unsafe":
                return self._send(*shop.buy_unsafe(item, user, qty))
            return self._send(404, {"detail": "Not Found"})

    return Handler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    connect(args.db).close()  # the schema exists before the first request
    server = ThreadingHTTPServer((args.host, args.port), handler(Shop(args.db)))
    server.daemon_threads = True
    print(f"shop listening on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
