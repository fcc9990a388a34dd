"""The columns of a file read: whole container lines gathered into a :class:`~shipper.lines.LineBatch`.

A CRI line that is whole (``F``), valid UTF-8, not over ``max_line_bytes``, and whose event needs
nothing of its own (its time fits int64 nanoseconds, its record cannot nest too deep) is taken
here; its time is the record's own (``timestamp``/``@timestamp``/``time``/``ts``) or the kubelet's,
exactly as the per-line path reads it. Every other line is the tailer's, as an event.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sized
from typing import Any

from shipper.event import INT64_MAX, INT64_MIN, MAX_RECORD_DEPTH
from shipper.lines import Item, LineBatch
from shipper.sources.records import parse_rfc3339_ns, record_from_payload, record_time_ns

_TS_FIRST = b'{"timestamp":"'
_TS_FIRST_LEN = len(_TS_FIRST)
_STREAM_NAMES = {b"stdout": "stdout", b"stderr": "stderr"}
# A payload this long with this many brackets may nest too deep: its event is checked on its own.
_DEEP_BYTES, _DEEP_BRACKETS = 2 * MAX_RECORD_DEPTH, MAX_RECORD_DEPTH  # as Event checks its record
_FRACTION_SCALE = [10 ** (9 - n) for n in range(10)]
_SECS: dict[bytes, int | None] = {}  # b"YYYY-MM-DDTHH:MM:SS" -> its epoch ns (None: not a time, or out of range)
_MAX_SECS = 16384
_FRACTIONS: dict[bytes, int] = {}  # b"123" -> 123_000_000 (milliseconds repeat every second)
_MAX_FRACTIONS = 4096
_UNSEEN: Any = object()


def _whole_seconds_ns(prefix: bytes) -> int | None:
    """Epoch nanoseconds of a ``YYYY-MM-DDTHH:MM:SS`` (UTC) prefix, cached; None if it is not one
    or a time in that second would not fit int64 nanoseconds."""
    if len(_SECS) >= _MAX_SECS:
        _SECS.clear()
    ns: int | None = None
    if prefix.isascii():
        ns = parse_rfc3339_ns(prefix.decode() + "Z")
        if ns is not None and not (ns >= INT64_MIN and ns + 999_999_999 <= INT64_MAX):
            ns = None
    _SECS[prefix] = ns
    return ns



def _fraction_ns(frac: bytes) -> int | None:
    """Nanoseconds of a second's fraction (1-9 digits after the point), cached; None if it is not
    digits."""
    if not frac.isdigit():
        return None
    if len(_FRACTIONS) >= _MAX_FRACTIONS:
        _FRACTIONS.clear()
    ns: int = int(frac) * _FRACTION_SCALE[len(frac)]
    _FRACTIONS[frac] = ns
    return ns


class LineColumns:
    """The lines of the current read that go out as one LineBatch."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self._offsets: list[int] = []
        self._times: list[int] = []
        self._streams: list[str | None] = []

    def __bool__(self) -> bool:
        return bool(self._offsets)

    def split(self, lines: list[bytes], pos: int, valid: bool, max_line: int, partials: Sized,
              other: Callable[[bytes, int], None]) -> int:
        """Take the lines of a read (each with its ``\\n``; the first at file offset ``pos``) into the
        columns, handing each line they cannot hold to ``other(line, offset)`` (without its
        ``\\n``) in turn; returns the offset after the last line.

        The common line (``<time> <stream> F {"timestamp":"...SS.fffZ",...}``, its second seen
        before) is taken inline; other whole lines through :meth:`take`. ``valid``: every line is
        ASCII (so valid UTF-8). While ``partials`` (the tailer's partial lines, changed in place)
        is not empty, every line goes to ``other``.
        """
        add_piece, add_offset = self._pieces.append, self._offsets.append
        add_time, add_stream = self._times.append, self._streams.append
        secs_of, fractions, head = _SECS, _FRACTIONS, _TS_FIRST
        # The whole second of the line before: most lines share it (no hash, no lookup). No line
        # matches the first (the inline path takes ASCII reads only).
        last_prefix, last_secs = b"\xff" * 19, None
        for raw in lines:
            off = pos
            pos += len(raw)
            if len(raw) <= max_line + 1 and not partials:
                parts = raw.split(b" ", 3)
                if len(parts) == 4 and parts[2] == b"F":
                    ts, msg = parts[0], parts[3]  # the payload, and its newline: a piece of the batch
                    # Inline: time field first, as "YYYY-MM-DDTHH:MM:SS.f...Z" (1-9 digits), like
                    # parse_rfc3339_ns's own fast path, from a cache of whole seconds in bytes.
                    if valid and msg[:_TS_FIRST_LEN] == head and len(ts) >= 20 and ts[4] == 45 \
                            and ts[10] in (84, 116) and msg[-2:-1] != b"\r" \
                            and (len(msg) <= _DEEP_BYTES + 1 or msg.count(b"{") + msg.count(b"[") <= _DEEP_BRACKETS):
                        # Slices and compares: bytes methods with arguments parse them, which costs more.
                        end = 38 if msg[37:39] == b'Z"' else msg.find(b'"', _TS_FIRST_LEN)  # ms: most lines
                        if 34 < end < 45 and msg[end - 1] == 90 and msg[33] == 46:  # "Z", "."
                            prefix = msg[14:33]
                            if prefix == last_prefix:
                                secs = last_secs
                            else:
                                last_prefix = prefix
                                secs = secs_of.get(last_prefix, _UNSEEN)
                                if secs is _UNSEEN:
                                    secs = _whole_seconds_ns(last_prefix)
                                last_secs = secs
                            frac = msg[34 : end - 1]
                            part = fractions.get(frac)
                            if part is None:
                                part = _fraction_ns(frac)
                            if secs is not None and part is not None:
                                rts = secs + part
                                if rts:
                                    add_piece(msg)
                                    add_offset(off)
                                    add_time(rts)
                                    name = parts[1]
                                    add_stream("stdout" if name == b"stdout" else "stderr" if name == b"stderr"
                                               else name.decode() or None)
                                    continue
                    parts[3] = msg[:-1]
                    if self.take(parts, off, valid):
                        continue
            other(raw[:-1], off)
        return pos

    def take(self, parts: list[bytes], off: int, valid: bool) -> bool:
        """A whole CRI line (split in ``parts``) whose event needs nothing of its own: into the
        read's LineBatch if it is valid UTF-8."""
        ts, msg = parts[0], parts[3]
        if len(ts) < 20 or ts[4] != 45 or ts[10] not in (84, 116) or msg.endswith(b"\r"):  # '-', 'T', 't'
            return False
        if len(msg) > _DEEP_BYTES and msg.count(b"{") + msg.count(b"[") > _DEEP_BRACKETS:
            return False
        if not valid:
            try:
                for part in parts:
                    part.decode("utf-8")
            except UnicodeDecodeError:
                return False
        rts: int | None = None
        if msg.startswith(_TS_FIRST):
            end = msg.find(b'"', _TS_FIRST_LEN)
            rts = parse_rfc3339_ns(msg[_TS_FIRST_LEN:end].decode()) if end > 0 else None
        if rts is None:
            record = record_from_payload(msg.decode())
            if len(record) > 1 or "message" not in record:
                rts = record_time_ns(record)
            if rts is None:
                rts = parse_rfc3339_ns(ts.decode())
        if not rts:
            rts = time.time_ns()
        elif not (type(rts) is int and INT64_MIN <= rts <= INT64_MAX):
            return False  # the per-line path repairs and flags it
        self._pieces += (msg, b"\n")
        self._offsets.append(off)
        self._times.append(rts)
        stream = parts[1]
        self._streams.append(_STREAM_NAMES.get(stream) or stream.decode() or None)
        return True

    def close(self, base: dict[str, Any], uid: str, out: list[Item]) -> None:
        """Hand on the lines gathered so far as one LineBatch (before any event that follows them)."""
        if self._offsets:
            # Copied, then emptied in place: split() holds these very lists.
            out.append(LineBatch(base, uid, b"".join(self._pieces), self._offsets.copy(),
                                 self._times.copy(), self._streams.copy()))
            for column in (self._pieces, self._offsets, self._times, self._streams):
                column.clear()
