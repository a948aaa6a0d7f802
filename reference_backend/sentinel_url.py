"""The ``redis+sentinel://`` URL a node is given to reach Redis behind Sentinel.

Format::

    redis+sentinel://[[username]:password@]host:port[,host:port...]/service_name[/db][?option=value&...]

    redis+sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/oversold
    redis+sentinel://:s3cret@127.0.0.1:26379,127.0.0.1:26380/oversold/0?socket_timeout=0.5

Hosts are the Sentinels (IPv6 in brackets: ``[::1]:26379``); credentials and
``db`` are for the data nodes. Options: ``socket_timeout`` and
``socket_connect_timeout`` (seconds, for Sentinels and data nodes),
``sentinel_password`` (for the Sentinels), ``min_other_sentinels`` (int).
Anything else is an error, so a typo never passes silently.

Usage::

    from redis.asyncio.sentinel import Sentinel

    cfg = parse_sentinel_url(url)
    sentinel = Sentinel(cfg.sentinels, **cfg.sentinel_args())
    r = sentinel.master_for(cfg.service_name)   # follows failovers
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

SCHEME = "redis+sentinel"
Address = tuple[str, int]


class SentinelURLError(ValueError):
    """A ``redis+sentinel://`` URL that cannot be used; the message names what is wrong."""


@dataclass(frozen=True)
class SentinelURL:
    """A parsed ``redis+sentinel://`` URL (see the module docstring)."""

    sentinels: tuple[Address, ...]
    service_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    socket_timeout: float | None = None
    socket_connect_timeout: float | None = None
    sentinel_password: str | None = None
    min_other_sentinels: int = 0

    def connection_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for connections to the data nodes (``master_for``)."""
        kw: dict[str, Any] = {"db": self.db}
        for key in ("username", "password", "socket_timeout", "socket_connect_timeout"):
            if getattr(self, key) is not None:
                kw[key] = getattr(self, key)
        return kw

    def sentinel_args(self) -> dict[str, Any]:
        """Keyword arguments for ``Sentinel(cfg.sentinels, **cfg.sentinel_args())``."""
        to_sentinels: dict[str, Any] = {}
        for key in ("socket_timeout", "socket_connect_timeout"):
            if getattr(self, key) is not None:
                to_sentinels[key] = getattr(self, key)
        if self.sentinel_password is not None:
            to_sentinels["password"] = self.sentinel_password
        return {
            "min_other_sentinels": self.min_other_sentinels,
            # Explicit: otherwise redis-py would send the data nodes' password to Sentinels.
            "sentinel_kwargs": to_sentinels,
            **self.connection_kwargs(),
        }


def parse_sentinel_url(url: str) -> SentinelURL:
    """Parse a ``redis+sentinel://`` URL; ``SentinelURLError`` names what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME:
        raise SentinelURLError(f"sentinel URL {url!r}: scheme must be {SCHEME}://")
    auth, _, hostlist = parts.netloc.rpartition("@")
    username = password = None
    if auth:
        user, has_colon, pw = auth.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if has_colon else None
    sentinels = tuple(_host_port(item, url) for item in hostlist.split(","))
    segments = [unquote(s) for s in parts.path.split("/")[1:]]
    if not segments or not segments[0] or len(segments) > 2:
        raise SentinelURLError(f"sentinel URL {url!r}: path must be /service_name or /service_name/db")
    db = 0
    if len(segments) == 2:
        if not segments[1].isdigit():
            raise SentinelURLError(f"sentinel URL {url!r}: db must be a number, got {segments[1]!r}")
        db = int(segments[1])
    options: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        try:
            if key in ("socket_timeout", "socket_connect_timeout"):
                options[key] = float(value)
                if options[key] <= 0:
                    raise ValueError
            elif key == "min_other_sentinels":
                options[key] = int(value)
                if options[key] < 0:
                    raise ValueError
            elif key == "sentinel_password":
                options[key] = value
            else:
                raise SentinelURLError(f"sentinel URL {url!r}: unknown option {key!r}")
        except ValueError:
            raise SentinelURLError(f"sentinel URL {url!r}: bad value {value!r} for {key}") from None
    return SentinelURL(sentinels, segments[0], db, username, password, **options)


def _host_port(item: str, url: str) -> Address:
    host, _, port = item.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SentinelURLError(f"sentinel URL {url!r}: expected host:port, got {item!r}")
    return host, int(port)
