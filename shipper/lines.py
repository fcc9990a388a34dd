"""A batch of plain lines read from one file, kept as columns rather than one object per event.

The file source's common case (whole container lines of valid UTF-8, each with its time already
read) is carried from the source through the disk buffer to the sinks as a :class:`LineBatch`:
the payloads joined in one ``bytes``, one list each of file offsets, times and streams, and the
metadata every line shares (source, file, Kubernetes) once. Sinks that only need the line (the
file sink, the Loki encoder) read the columns; any other consumer asks for :meth:`LineBatch.events`,
which are exactly the :class:`~shipper.event.Event` objects the per-line path would have made.
"""

from __future__ import annotations

import io
from array import array
from collections.abc import Iterable, Sequence
from itertools import islice
from operator import itemgetter
from typing import Any

import msgpack

from shipper.event import Event, buffer_entry, pack_events, pack_one, unpack_events

_NO_NEWLINE = itemgetter(slice(None, -1))


def split_lines(data: bytes, keep_newlines: bool = False) -> tuple[list[bytes], bytes]:
    """The lines of ``data`` that end with ``\\n`` (without it, unless ``keep_newlines``), and what
    follows the last one: ``data.split(b"\\n")`` but its last part apart. Newlines are found with
    ``memchr`` (through ``BytesIO.readlines``), some four times faster per byte than
    ``bytes.split``'s byte loop."""
    lines = io.BytesIO(data).readlines()
    rest = b""
    if lines and lines[-1][-1:] != b"\n":
        rest = lines.pop()
    return (lines if keep_newlines else list(map(_NO_NEWLINE, lines))), rest


class LineBatch:
    """Lines of one file, in order: ``data`` holds each payload followed by ``\\n``.

    Every payload is valid UTF-8 without ``\\n``, not truncated, and its event needs no repair (its
    time fits int64 nanoseconds, its record cannot nest too deep): lines that do not qualify are
    events of their own. ``base`` is the metadata every line shares and is never mutated; a line's
    event metadata is ``base`` plus its ``offset``, ``id`` (``<uid>:<offset>``) and ``stream``, then
    ``extra`` (flags set on the whole batch after it was read).
    """

    __slots__ = ("base", "data", "extra", "offsets", "streams", "times", "uid")

    def __init__(self, base: dict[str, Any], uid: str, data: bytes, offsets: list[int], times: list[int],
                 streams: list[str | None], extra: dict[str, Any] | None = None) -> None:
        self.base = base
        self.extra = extra
        self.uid = uid
        self.data = data
        self.offsets = offsets
        self.times = times
        self.streams = streams

    def __len__(self) -> int:
        return len(self.offsets)

    def __repr__(self) -> str:
        return f"LineBatch({len(self)} lines of {self.base.get('file')!r})"

    def lines(self) -> list[bytes]:
        """Each payload's bytes."""
        return split_lines(self.data)[0]

    def texts(self) -> list[str]:
        """Each payload as text."""
        out = self.data.decode().split("\n")
        out.pop()
        return out

    def meta(self, i: int) -> dict[str, Any]:
        """The metadata of line ``i``'s event."""
        off = self.offsets[i]
        meta = {**self.base, "offset": off, "id": f"{self.uid}:{off}"}
        stream = self.streams[i]
        if stream:
            meta["stream"] = stream
        if self.extra:
            meta.update(self.extra)
        return meta

    def events(self) -> list[Event]:
        """One :class:`~shipper.event.Event` per line, as the per-line path makes them."""
        new = Event.__new__
        out = []
        base, uid, extra = self.base, self.uid, self.extra
        for raw, off, ts, stream in zip(self.texts(), self.offsets, self.times, self.streams, strict=True):
            e = new(Event)
            meta = {**base, "offset": off, "id": f"{uid}:{off}"}
            if stream:
                meta["stream"] = stream
            if extra:
                meta.update(extra)
            e._record, e.raw, e.ts_ns, e.meta, e.derived = None, raw, ts, meta, True
            out.append(e)
        return out

    def split(self, at: int) -> tuple[LineBatch, LineBatch]:
        """The lines before ``at`` and from ``at`` on, as two batches."""
        cut = sum(map(len, islice(io.BytesIO(self.data), max(at, 0))))  # the first ``at`` lines, with newlines
        return (
            LineBatch(self.base, self.uid, self.data[:cut], self.offsets[:at], self.times[:at], self.streams[:at],
                      self.extra),
            LineBatch(self.base, self.uid, self.data[cut:], self.offsets[at:], self.times[at:], self.streams[at:],
                      self.extra),
        )

    def with_extra(self, extra: dict[str, Any]) -> LineBatch:
        """The same lines with ``extra`` added to every line's metadata."""
        return LineBatch(self.base, self.uid, self.data, self.offsets, self.times, self.streams,
                         {**(self.extra or {}), **extra})

    def fields(self) -> tuple[Any, ...]:
        """What the disk buffer stores of this batch (see :meth:`from_fields`): offsets and times as
        int64 arrays, streams as one byte per line indexing the distinct stream names."""
        names = list(dict.fromkeys(self.streams))
        if len(names) > 255:
            raise ValueError("more than 255 stream names in one batch")
        index = {name: i for i, name in enumerate(names)}
        return (self.base, self.uid, self.data, array("q", self.offsets).tobytes(), array("q", self.times).tobytes(),
                names, bytes(map(index.__getitem__, self.streams)), self.extra)

    @classmethod
    def from_fields(cls, fields: Sequence[Any]) -> LineBatch:
        """The batch :meth:`fields` described; ``ValueError`` if they do not describe one."""
        base, uid, data, offsets, times, names, codes, extra = fields
        if not (isinstance(base, dict) and type(uid) is str and type(data) is bytes and type(codes) is bytes
                and type(offsets) is bytes and type(times) is bytes and type(names) is list
                and all(n is None or type(n) is str for n in names)
                and (extra is None or isinstance(extra, dict))):
            raise ValueError("malformed line batch")
        lines = _newlines(data)
        if not (len(offsets) == len(times) == 8 * lines and len(codes) == lines):
            raise ValueError("malformed line batch")
        offs, ts = array("q"), array("q")
        offs.frombytes(offsets)
        ts.frombytes(times)
        return cls(base, uid, data, offs.tolist(), ts.tolist(), list(map(names.__getitem__, codes)), extra)


Item = Event | LineBatch
"""What a source hands downstream: single events and line batches, in order."""


def _newlines(data: bytes) -> int:
    """How many ``\\n`` ``data`` holds (as ``data.count(b"\\n")``, found with ``memchr``)."""
    return len(split_lines(data, keep_newlines=True)[0])


def count(items: Iterable[Item]) -> int:
    """How many events ``items`` hold."""
    return sum(len(it) if type(it) is LineBatch else 1 for it in items)


def flatten(items: Iterable[Item]) -> list[Event]:
    """The events of ``items``, in order."""
    out: list[Event] = []
    for it in items:
        if type(it) is LineBatch:
            out.extend(it.events())
        else:
            out.append(it)  # type: ignore[arg-type]
    return out


def pack_items(items: Sequence[Item]) -> bytes:
    """Serialise events and line batches for the disk buffer (events alone: as :func:`pack_events`).

    A line batch is one entry of eight fields, an event one of four; a value msgpack cannot hold
    costs only its own event (a batch holding one is stored as its events).
    """
    if all(type(it) is Event for it in items):
        return pack_events(items)  # type: ignore[arg-type]
    try:
        return msgpack.packb([it.fields() if type(it) is LineBatch else buffer_entry(it) for it in items],  # type: ignore[arg-type]
                             use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        pass
    entries: list[bytes] = []
    for it in items:
        if type(it) is LineBatch:
            try:
                entries.append(msgpack.packb(it.fields(), use_bin_type=True))
                continue
            except (TypeError, ValueError, OverflowError):
                evs = it.events()
        else:
            evs = [it]  # type: ignore[list-item]
        entries.extend(pack_one(e) for e in evs)
    return msgpack.Packer(use_bin_type=True).pack_array_header(len(entries)) + b"".join(entries)


def unpack_items(data: bytes) -> list[Item]:
    """Inverse of :func:`pack_items` (and of :func:`~shipper.event.pack_events`)."""
    entries = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if all(len(x) == 4 for x in entries):
        return unpack_events(data, entries)  # type: ignore[return-value]
    out: list[Item] = []
    for x in entries:
        if len(x) == 4:
            out.extend(unpack_events(b"", [x]))
        else:
            out.append(LineBatch.from_fields(x))
    return out


def halve(items: list[Item], n: int) -> tuple[list[Item], list[Item]]:
    """``items`` cut in two with about ``n // 2`` events each (a line batch is cut inside if need be)."""
    if len(items) > 1:
        mid, seen = 0, 0
        while mid < len(items) - 1 and seen + count(items[mid : mid + 1]) <= n // 2:
            seen += count(items[mid : mid + 1])
            mid += 1
        if mid > 0:
            return items[:mid], items[mid:]
        if type(items[0]) is not LineBatch or len(items[0]) == 1:
            return items[:1], items[1:]
    batch = items[0]
    assert type(batch) is LineBatch
    a, b = batch.split(len(batch) // 2)
    return [a], [b, *items[1:]]
