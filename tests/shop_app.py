"""A tiny shop whose API is shaped nothing like the contract, for the adapter tests.

Served by the standard library (one thread per connection), state in memory
behind one lock, so it never oversells: what the example adapter
(``oversold.adapters.shop``) is tested against. Every business answer is HTTP
200 ``{"code": 0|<refusal>, "msg", "data"}``; a refusal has a non-zero code.
Reservations lock stock for ``lock_seconds`` and are released when found
expired (at any request: one sweep under the lock). Requests with an
``X-Request-Id`` seen before get the first answer again.

    python tests/shop_app.py --port 9000 --admin-key secret
    python tests/shop_app.py --port 9000 --oversell   # the negative control: reservations skip the stock check
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

OUT_OF_STOCK, LOCK_EXPIRED, RELEASED, ALREADY_PAID, NO_SUCH, CONFLICT, BAD_PARAM = (
    1001, 1002, 1003, 1004, 1005, 1006, 4000)


class Shop:
    """The shop's state: items and reservations; every method runs under ``lock``."""

    def __init__(self, oversell: bool = False) -> None:
        self.oversell = oversell  # the bug of the negative control: a reservation never checks the stock
        self.lock = threading.Lock()
        self.items: dict[str, dict[str, Any]] = {}
        self.reservations: dict[str, dict[str, Any]] = {}
        self.answers: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}  # (path, request id) -> answer
        self.seq = 0

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    def sweep(self) -> None:
        now = self.now_ms()
        for r in self.reservations.values():
            if r["state"] == "LOCKED" and r["lock_until"] <= now:
                self._release(r, "EXPIRED")

    def _release(self, r: dict[str, Any], state: str) -> None:
        item = self.items[r["sku"]]
        item["locked"] -= r["count"]
        item["free"] += r["count"]
        r["state"] = state

    def setup(self, body: dict[str, Any]) -> dict[str, Any]:
        sku, total, lock_s = body.get("sku"), body.get("total"), body.get("lock_seconds")
        if not isinstance(sku, str) or not isinstance(total, int) or not isinstance(lock_s, (int, float)):
            return err(BAD_PARAM, "sku, total, lock_seconds")
        self.items[sku] = {"total": total, "free": total, "locked": 0, "sold": 0, "lock_seconds": float(lock_s)}
        self.reservations = {k: v for k, v in self.reservations.items() if v["sku"] != sku}
        self.answers.clear()
        return ok(self.items[sku])

    def reserve(self, body: dict[str, Any]) -> dict[str, Any]:
        item = self.items.get(body.get("sku"))  # type: ignore[arg-type]
        count, buyer = body.get("count"), body.get("buyer")
        if item is None or not isinstance(count, int) or count < 1 or not isinstance(buyer, str):
            return err(BAD_PARAM, "sku, buyer, count")
        if item["free"] < count and not self.oversell:
            return err(OUT_OF_STOCK, "sold out")
        self.seq += 1
        rid = f"R-{self.seq}"
        item["free"] -= count
        item["locked"] += count
        r = {"reservation": rid, "sku": body["sku"], "buyer": buyer, "count": count, "state": "LOCKED",
             "lock_until": self.now_ms() + int(item["lock_seconds"] * 1000)}
        self.reservations[rid] = r
        return ok(r)

    def checkout(self, body: dict[str, Any]) -> dict[str, Any]:
        r = self.reservations.get(body.get("reservation"))  # type: ignore[arg-type]
        if r is None:
            return err(NO_SUCH, "no such reservation")
        if r["state"] == "PAID":
            return ok(r)
        if r["state"] == "EXPIRED":
            return err(LOCK_EXPIRED, "the lock expired")
        if r["state"] == "RELEASED":
            return err(RELEASED, "released")
        item = self.items[r["sku"]]
        item["locked"] -= r["count"]
        item["sold"] += r["count"]
        r["state"] = "PAID"
        return ok(r)

    def release(self, body: dict[str, Any]) -> dict[str, Any]:
        r = self.reservations.get(body.get("reservation"))  # type: ignore[arg-type]
        if r is None:
            return err(NO_SUCH, "no such reservation")
        if r["state"] == "PAID":
            return err(ALREADY_PAID, "paid")
        if r["state"] == "LOCKED":
            self._release(r, "RELEASED")
        return ok(r)


def ok(data: dict[str, Any]) -> dict[str, Any]:
    return {"code": 0, "msg": "ok", "data": dict(data)}


def err(code: int, msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": None}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real shop
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    shop: Shop
    admin_key: str

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        with self.shop.lock:
            self.shop.sweep()
            if url.path == "/shop/api/stock" and q.get("sku") in self.shop.items:
                item = self.shop.items[q["sku"]]
                return self._send(200, ok({k: item[k] for k in ("total", "free", "locked", "sold")}))
            if url.path == "/shop/api/reservation":
                r = self.shop.reservations.get(q.get("id", ""))
                return self._send(200, ok(r) if r else err(NO_SUCH, "no such reservation"))
        self._send(404, {"code": 404, "msg": "no such page", "data": None})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._send(200, err(BAD_PARAM, "body must be a JSON object"))
        path = urlsplit(self.path).path
        if path == "/shop/api/admin/items":
            if self.headers.get("X-Admin-Key") != self.admin_key:
                return self._send(401, {"code": 401, "msg": "bad admin key", "data": None})
            with self.shop.lock:
                return self._send(200, self.shop.setup(body))
        action = {"/shop/api/reserve": Shop.reserve, "/shop/api/checkout": Shop.checkout,
                  "/shop/api/release": Shop.release}.get(path)
        if action is None:
            return self._send(404, {"code": 404, "msg": "no such page", "data": None})
        rid = self.headers.get("X-Request-Id")
        fingerprint = json.dumps(body, sort_keys=True)
        with self.shop.lock:
            self.shop.sweep()
            if rid is not None and (path, rid) in self.shop.answers:
                seen, answer = self.shop.answers[(path, rid)]
                return self._send(200, answer if seen == fingerprint else err(CONFLICT, "request id reused"))
            answer = action(self.shop, body)
            if rid is not None:
                self.shop.answers[(path, rid)] = (fingerprint, answer)
        self._send(200, answer)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--admin-key", default="secret")
    p.add_argument("--oversell", action="store_true", help="the bug: reserve without checking the stock")
    args = p.parse_args()
    Handler.shop = Shop(oversell=args.oversell)
    Handler.admin_key = args.admin_key
    ThreadingHTTPServer.request_queue_size = 256  # a swarm connects all at once; 5 would drop SYNs
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
