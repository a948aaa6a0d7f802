"""The columnar twin of ``history.jsonl``: the same records, a column a field, for the checker's hot path.

``history.jsonl`` is the history: the readable file users, tools and ``oversold check``
rely on. ``history.cols`` is written beside it in the same pass (``write_history_stream``)
and remembers the size and CRC-32 of the JSON lines it was written with. A reader uses it
only while ``history.jsonl`` is byte for byte what it was; an edited, truncated or replaced
``history.jsonl`` (or a missing, cut or unreadable ``history.cols``) is read as JSON lines.
So the twin can make reading faster, never different.

Layout: frames, each a 4-byte little-endian length and a msgpack payload (the columns of
up to ``FRAME_RECORDS`` records; ``oversold.model.history`` says what is in them), then the
trailer (a msgpack map: ``format``, ``version``, ``records``, ``source_size``,
``source_crc32`` and ``frames_crc32``, the CRC-32 of the frames' payloads), then the
trailer's own 4-byte length. This module knows the framing and the check against the
source; it knows nothing of records.

Usage::

    w = ColsWriter(cols_path(Path("history.jsonl")))
    w.add_frame(payload, records=100)
    w.finish(source_size=12_345, source_crc32=0x1234abcd)     # or w.abort()
    frames = read_frames(Path("history.jsonl"))                 # None: read the JSON lines
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import msgspec

FORMAT = "oversold-history-cols"
VERSION = 1
FRAME_RECORDS = 1 << 16
_LEN = struct.Struct("<I")
_READ = 1 << 22


def cols_path(history: Path) -> Path:
    """Where the twin of ``history`` lives: ``history.jsonl`` -> ``history.cols``; any other name gets
    ``.cols`` added (``h.cols`` -> ``h.cols.cols``: a twin never takes the place of its history)."""
    history = Path(history)
    if history.suffix == ".jsonl":
        return history.with_suffix(".cols")
    return history.with_name(history.name + ".cols")


class ColsWriter:
    """Frames appended to a temporary file, renamed into place by ``finish`` (readers never see half a file)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._f = open(self._tmp, "wb", buffering=1 << 20)
        self.records = 0
        self._crc = 0

    def add_frame(self, payload: bytes, records: int) -> None:
        self._f.write(_LEN.pack(len(payload)))
        self._f.write(payload)
        self._crc = zlib.crc32(payload, self._crc)
        self.records += records

    def finish(self, source_size: int, source_crc32: int) -> None:
        trailer = msgspec.msgpack.encode({"format": FORMAT, "version": VERSION, "records": self.records,
                                          "source_size": source_size, "source_crc32": source_crc32,
                                          "frames_crc32": self._crc})
        try:
            self._f.write(trailer)
            self._f.write(_LEN.pack(len(trailer)))
            self._f.close()
            os.replace(self._tmp, self.path)
        except OSError:
            self.abort()
            raise

    def abort(self) -> None:
        """Give up the twin (a record it cannot hold, a full disk): no file is left, and an older twin is removed."""
        try:
            self._f.close()
        except OSError:
            pass
        for p in (self._tmp, self.path):
            try:
                p.unlink()
            except OSError:
                pass


def source_crc32(path: Path) -> tuple[int, int]:
    """(size, CRC-32) of a file, read a bounded block at a time."""
    crc = size = 0
    with open(path, "rb") as f:
        while block := f.read(_READ):
            crc = zlib.crc32(block, crc)
            size += len(block)
    return size, crc


def read_frames(history: Path) -> tuple[Iterator[bytes], int] | None:
    """The frames of ``history``'s twin (read one at a time) and the record count its trailer promises; None
    when there is no twin, or it is not the twin of ``history`` as it is now (size or CRC-32 differ). A frame
    cut short raises ``ValueError`` when it is reached."""
    path = cols_path(history)
    try:
        f = open(path, "rb")
    except OSError:
        return None
    with f:
        try:
            source_size = os.stat(history).st_size
            f.seek(0, os.SEEK_END)
            total = f.tell()
            trailer, end = _trailer(f, total)
        except OSError:
            return None
    if trailer is None or trailer.get("source_size") != source_size or not isinstance(trailer.get("records"), int):
        return None
    if source_crc32(history) != (source_size, trailer.get("source_crc32")):
        return None
    return _frames(path, end, trailer.get("frames_crc32")), trailer["records"]


def _frames(path: Path, end: int, want_crc: Any) -> Iterator[bytes]:
    """The frames one by one; ``ValueError`` once they are read if they are not what was written."""
    with open(path, "rb") as f:
        at = crc = 0
        while at < end:
            head = f.read(_LEN.size)
            if len(head) < _LEN.size:
                raise ValueError(f"{path}: a frame is cut short")
            (n,) = _LEN.unpack(head)
            at += _LEN.size + n
            payload = f.read(n)
            if len(payload) < n or at > end:
                raise ValueError(f"{path}: a frame is cut short")
            crc = zlib.crc32(payload, crc)
            yield payload
    if crc != want_crc:
        raise ValueError(f"{path}: the frames are not the ones written (CRC-32)")


def _trailer(f: BinaryIO, total: int) -> tuple[dict[str, Any] | None, int]:
    """The trailer (None if it is not one of ours) and where the frames end."""
    if total < _LEN.size:
        return None, 0
    f.seek(total - _LEN.size)
    (n,) = _LEN.unpack(f.read(_LEN.size))
    end = total - _LEN.size - n
    if end < 0:
        return None, 0
    f.seek(end)
    try:
        trailer = msgspec.msgpack.decode(f.read(n))
    except msgspec.DecodeError:
        return None, 0
    if not isinstance(trailer, dict) or trailer.get("format") != FORMAT or trailer.get("version") != VERSION:
        return None, 0
    return trailer, end
