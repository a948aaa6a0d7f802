"""The fault proxy's RESP scanner, pure: frames found the same at every split point, idle only between
frames. The proxy against a real Redis is in tests/integration/test_chaos_proxy.py.
"""

from __future__ import annotations


import pytest

from oversold.chaos.resp import RespScanner

# ---------------------------------------------------------------- fixtures


def resp(*args: str | bytes) -> bytes:
    """One RESP2 multibulk command, as clients send them."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


# ------------------------------------------------------ the RESP scanner (pure)

REQUESTS = (
    resp("PING")
    + resp("SET", "k", b"a\r\n*3\r\n$1\r\nx\r\n")  # payload that looks like RESP
    + b"PING inline\r\n"
    + b"\r\n"  # blank inline line: Redis answers nothing
    + b"*0\r\n"  # empty multibulk: Redis answers nothing
    + resp("EVALSHA", "ab" * 20, "1", "k")
    + resp("client", "reply", "on")
)
REQUEST_WORDS = [(b"PING",), (b"SET", b"K"), (b"PING", b"INLINE"), (b"EVALSHA", b"AB" * 20), (b"CLIENT", b"REPLY")]

REPLIES = (
    b"+OK\r\n-ERR boom\r\n:42\r\n$-1\r\n$9\r\na\r\n*3\r\n:1\r\n*-1\r\n*0\r\n"
    b"*2\r\n*2\r\n:1\r\n$1\r\nx\r\n*1\r\n*0\r\n"  # nested arrays
    b"%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n_\r\n"  # RESP3 map holding an array
    b"_\r\n#t\r\n,1.5\r\n(12345678901234567890\r\n=8\r\ntxt:a\r\nb\r\n!3\r\nERR\r\n~2\r\n:1\r\n:2\r\n"
    b"|1\r\n+ttl\r\n:3\r\n:7\r\n"  # an attribute then the value it annotates: one reply
    b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n"  # a push answers no command
)
REPLY_KINDS = ["reply"] * 17 + ["push"]


def scan_all(scanner: RespScanner, pieces: list[bytes]) -> list[tuple[int, str, tuple[bytes, ...]]]:
    """Frames with absolute end offsets, whatever the split."""
    out, base = [], 0
    for piece in pieces:
        out += [(base + f.end, f.kind, f.words) for f in scanner.feed(piece)]
        base += len(piece)
    return out


@pytest.mark.parametrize("requests, data", [(True, REQUESTS), (False, REPLIES)])
def test_scanner_finds_the_same_frames_at_every_split(requests, data):
    whole = scan_all(RespScanner(requests=requests), [data])
    if requests:
        assert [w for _, _, w in whole] == REQUEST_WORDS
    else:
        assert [k for _, k, _ in whole] == REPLY_KINDS
    assert whole[-1][0] == len(data)
    for cut in range(1, len(data)):
        assert scan_all(RespScanner(requests=requests), [data[:cut], data[cut:]]) == whole, cut
    assert scan_all(RespScanner(requests=requests), [bytes([b]) for b in data]) == whole


def test_scanner_is_idle_only_between_frames():
    scanner = RespScanner(requests=False)
    assert scanner.idle
    scanner.feed(b"$5\r\nhel")
    assert not scanner.idle
    scanner.feed(b"lo\r\n")
    assert scanner.idle


# ------------------------------------------------------------ passthrough


# ---------------------------------------------------------------- latency


# ------------------------------------------------------- down / enabled=false


# ---------------------------------------------------------------- timeout


# ------------------------------------------------------------- reset_peer


# -------------------------------------------------------------- bandwidth


# ------------------------------------------------------- redis_drop_reply


# ------------------------------------------------------ healing, isolation


# ------------------------------------------------------------ control API


