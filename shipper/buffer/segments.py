"""The buffer's segment files: numbered files of records ``magic | length | crc32 | events | payload``.

These functions encode, scan and read single records by offset; where the reader stands, what is
acknowledged and who waits is :class:`~shipper.buffer.disk.DiskBuffer`'s business. A record counts
only with its magic, its whole length and a matching crc32, so a torn tail or a flipped bit is
found and skipped, never delivered.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"\xecLG\x01"
HEADER = struct.Struct(">4sIII")  # magic, payload length, crc32(payload), event count
MAX_RECORD = 1 << 30


def segment_name(seg: int) -> str:
    """The file name of segment number ``seg`` (zero-padded, so names sort as numbers)."""
    return f"{seg:016d}.seg"


def list_segments(directory: Path) -> list[int]:
    """The segment numbers present in ``directory``, oldest first."""
    out = []
    for p in directory.glob("*.seg"):
        with contextlib.suppress(ValueError):
            out.append(int(p.stem))
    return sorted(out)


def encode_record(payload: bytes, count: int) -> bytes:
    """One record holding ``count`` events packed in ``payload``."""
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload), count) + payload


def scan_headers(path: Path, start: int) -> tuple[int, int]:
    """Bytes and events after ``start`` in a segment, reading headers only (checksums are checked on read)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0, 0
    events = 0
    with path.open("rb") as f:
        off = start
        while off + HEADER.size <= size:
            f.seek(off)
            magic, length, _crc, count = HEADER.unpack(f.read(HEADER.size))
            if magic != MAGIC or off + HEADER.size + length > size:
                break
            events += count
            off += HEADER.size + length
    return max(0, size - start), events


@dataclass(frozen=True, slots=True)
class Record:
    """A valid record: it ends at ``end`` and takes ``size`` bytes with its header."""

    end: int
    size: int
    count: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Damaged:
    """Bytes that are not a valid record, skipped up to ``end``; ``segment_over`` when no valid record follows."""

    end: int
    reason: str
    segment_over: bool


def read_record(fd: int, off: int, limit: int | None) -> Record | Damaged | None:
    """The record at ``off`` of an open segment; ``None`` at the clean end of a finished one.

    ``limit`` is the written length of the segment still being appended to (``None`` once it is
    finished): bytes past it may be a write in progress, so they are never read.
    """
    header = os.pread(fd, HEADER.size, off)
    if limit is None and len(header) < HEADER.size:
        return Damaged(off + len(header), "torn header at segment end", True) if header else None
    magic, length, crc, count = HEADER.unpack(header)
    payload = os.pread(fd, length, off + HEADER.size) if magic == MAGIC and length < MAX_RECORD else b""
    if magic != MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
        nxt = _resync(fd, off + 1, limit)
        reason = "bad magic or checksum" if len(payload) == length else "torn record"
        return Damaged(off, reason, True) if nxt is None else Damaged(nxt, reason, False)
    return Record(off + HEADER.size + length, HEADER.size + length, count, payload)


def _resync(fd: int, start: int, limit: int | None) -> int | None:
    """Offset of the next valid record after ``start`` in this segment, or None."""
    data = os.pread(fd, (limit - start) if limit is not None else MAX_RECORD, start)
    pos = 0
    while True:
        i = data.find(MAGIC, pos)
        if i < 0 or i + HEADER.size > len(data):
            return None
        _m, length, crc, _n = HEADER.unpack_from(data, i)
        body = data[i + HEADER.size : i + HEADER.size + length]
        if len(body) == length and zlib.crc32(body) == crc:
            return start + i
        pos = i + 1
