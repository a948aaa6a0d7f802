"""A streaming RESP scanner: where each command or reply ends in a byte stream.

The fault proxy never decodes values; it only needs frame *boundaries* so it
can pair the N-th reply with the N-th command of a connection and cut a reply
out of the stream. Bytes arrive in arbitrary chunks (a bulk string can span
many reads, one read can hold a hundred pipelined commands), so the scanner
keeps its position between calls instead of re-parsing from the start.

Understood: RESP2 (``+ - : $ *``) and the RESP3 types Redis 6+ sends (``_ # ,
( ! = % ~ > |``). Requests may be multibulk (``*N`` of ``$`` strings) or
inline (``PING\\r\\n``). A RESP3 push (``>``) is reported with ``kind="push"``
because it answers no command; an attribute (``|``) prefixes the value it
annotates and is not a frame of its own.

Usage::

    scanner = RespScanner(requests=True)
    frames = scanner.feed(b"*1\\r\\n$4\\r\\nPING\\r\\n*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk")
    # one Frame(end=14, kind="command", words=(b"PING",)); GET is not complete yet
    frames = scanner.feed(b"\\r\\n")   # Frame(end=2, kind="command", words=(b"GET", b"K"))
"""

from __future__ import annotations

from dataclasses import dataclass

_MAX_LINE = 64 * 1024  # Redis refuses longer inline requests and headers (PROTO_INLINE_MAX_SIZE)
_WORD_BYTES = 64  # command names and subcommands are short; no need to keep more
_WORDS = 2  # the command and its first argument (for CLIENT REPLY and the like)

_LINE_TYPES = frozenset(b"+-:_#,(")
_BULK_TYPES = frozenset(b"$!=")
_AGG_TYPES = frozenset(b"*~>")


class RespError(ValueError):
    """The stream is not RESP (or uses a form this scanner does not follow)."""


@dataclass(frozen=True)
class Frame:
    """One complete top-level frame.

    ``end`` is the offset just past the frame *in the chunk given to this
    ``feed`` call*; ``words`` holds the first words of a command, upper-cased
    (empty for replies).
    """

    end: int
    kind: str  # "command" | "reply" | "push"
    words: tuple[bytes, ...] = ()


class RespScanner:
    """Find frame ends in one direction of a RESP connection (see module doc)."""

    def __init__(self, *, requests: bool) -> None:
        self._requests = requests
        self._line = bytearray()  # a header line split across chunks
        self._skip = 0  # bytes of the current bulk payload (plus CRLF) still to pass
        self._capture_left = 0  # how many of those payload bytes to copy into a word
        self._capturing: bytearray | None = None
        self._stack: list[list[int]] = []  # [elements left, is_attribute] per open aggregate
        self._push = False  # the open top-level frame is a RESP3 push
        self._words: list[bytes] = []
        self._in_frame = False  # some bytes of the next top-level frame were seen

    @property
    def idle(self) -> bool:
        """True between frames: the next byte fed starts a new top-level frame."""
        return not self._in_frame

    def feed(self, data: bytes) -> list[Frame]:
        """Scan ``data`` (the next bytes of the stream); return the frames it completes."""
        frames: list[Frame] = []
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                take = min(self._skip, n - i)
                if self._capture_left and self._capturing is not None:
                    part = data[i : i + min(take, self._capture_left)]
                    self._capturing += part
                    self._capture_left -= len(part)
                i += take
                self._skip -= take
                if self._skip == 0:
                    self._end_bulk()
                    if self._value_done():
                        frames.append(self._frame(i))
                continue
            j = data.find(b"\n", i)
            self._in_frame = True
            if j < 0:
                self._line += data[i:]
                if len(self._line) > _MAX_LINE:
                    raise RespError("header line too long")
                break
            if self._line:
                line = bytes(self._line) + data[i:j]
                self._line.clear()
            else:
                line = data[i:j]
            i = j + 1
            if self._on_line(line.rstrip(b"\r")):
                frames.append(self._frame(i))
            elif self._requests and not self._stack and not self._skip:
                self._in_frame = False  # a request Redis ignores ("*0", blank line)
        return frames

    # -- internals -------------------------------------------------------

    def _frame(self, end: int) -> Frame:
        if self._requests:
            frame = Frame(end, "command", tuple(w.upper() for w in self._words))
        else:
            frame = Frame(end, "push" if self._push else "reply")
        self._words = []
        self._push = False
        self._in_frame = False
        return frame

    def _on_line(self, line: bytes) -> bool:
        """Handle one header line; True when it completes a top-level frame."""
        if self._requests and not self._stack and not line.startswith(b"*"):
            # Inline command. Redis answers nothing to an empty line.
            self._words = line.split()[:_WORDS]
            return bool(self._words)
        if not line:
            raise RespError("empty header line")
        kind, rest = line[0], line[1:]
        if kind in _LINE_TYPES:
            if self._requests:
                raise RespError("a request holds only bulk strings")
            return self._value_done()
        try:
            count = int(rest)
        except ValueError:
            raise RespError(f"bad length in {line[:32]!r}") from None
        if kind in _BULK_TYPES:
            if count < 0:  # null bulk string
                return self._value_done()
            self._skip = count + 2
            if self._requests and len(self._stack) == 1 and len(self._words) < _WORDS:
                self._capturing = bytearray()
                self._capture_left = min(count, _WORD_BYTES)
            return False
        if kind in _AGG_TYPES or kind == ord("%") or kind == ord("|"):
            if self._requests and (kind != ord("*") or self._stack):
                raise RespError("a request is one flat array")
            if kind == ord(">") and not self._stack:
                self._push = True
            if kind == ord("%") or kind == ord("|"):
                count *= 2  # a map or attribute holds key/value pairs
            if kind == ord("|"):
                if count > 0:
                    self._stack.append([count, 1])
                return False
            if count <= 0:
                if self._requests and not self._stack:
                    return False  # Redis ignores "*0" and "*-1" requests: no reply
                return self._value_done()
            self._stack.append([count, 0])
            return False
        raise RespError(f"unknown RESP type byte {bytes([kind])!r}")

    def _end_bulk(self) -> None:
        if self._capturing is not None:
            self._words.append(bytes(self._capturing))
            self._capturing = None
            self._capture_left = 0

    def _value_done(self) -> bool:
        """One value finished; close every aggregate it completes. True at top level."""
        while self._stack:
            top = self._stack[-1]
            top[0] -= 1
            if top[0] > 0:
                return False
            self._stack.pop()
            if top[1]:
                # An attribute annotates the next value; it does not count as one.
                return False
        return True
