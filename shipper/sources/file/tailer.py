"""One tailed file: reads from an open descriptor, assembles lines and events, tracks safe offsets."""

from __future__ import annotations

import hashlib
import logging
import os
import time
import zlib
from collections.abc import Callable
from typing import Any

from shipper import metrics
from shipper.event import INT64_MAX, INT64_MIN, Event
from shipper.lines import Item, LineBatch
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.formats import PARSERS, FormatError
from shipper.sources.file.multiline import STREAMS, LineGrouper, Pending, StreamGroups
from shipper.sources.file.paths import display_path
from shipper.sources.records import parse_rfc3339_ns, record_from_payload, record_time_ns

log = logging.getLogger("shipper.sources.file")

FP_BYTES = 1024
_TS_FIRST = '{"timestamp":"'
_TS_FIRST_LEN = len(_TS_FIRST)
_TS_FIRST_BYTES = _TS_FIRST.encode()
_STREAM_NAMES = {b"stdout": "stdout", b"stderr": "stderr"}
# A payload this long with this many brackets may nest too deep: its event is checked on its own.
_DEEP_BYTES, _DEEP_BRACKETS = 400, 200
_FRACTION_SCALE = [10 ** (9 - n) for n in range(10)]
_SECS: dict[bytes, int | None] = {}  # b"YYYY-MM-DDTHH:MM:SS" -> its epoch ns (None: not a time, or out of range)
_MAX_SECS = 16384
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


def fingerprint(fd: int) -> int | None:
    """crc32 of the file's first line (at most 1 KiB): immutable once written, unlike size or mtime.

    None while the file has no complete first line yet (it is then read later, not guessed at).
    """
    head = os.pread(fd, FP_BYTES, 0)
    nl = head.find(b"\n")
    if nl >= 0:
        return zlib.crc32(head[: nl + 1])
    if len(head) >= FP_BYTES:
        return zlib.crc32(head)
    return None


class Tailer:
    """Reads one file (by inode) from ``offset``; ``safe_offset`` is where a restart must resume."""

    def __init__(
        self, source: str, path: str, fd: int, dev: int, ino: int, fp: int, offset: int, gen: int,
        cfg: FileSourceConfig, node: str, kubernetes: dict[str, Any] | None, batches: bool = False,
    ) -> None:
        """``batches``: whole valid container lines are handed on as :class:`~shipper.lines.LineBatch`
        columns (one per read) rather than one :class:`~shipper.event.Event` each."""
        self.source, self.path, self.fd, self.dev, self.ino = source, path, fd, dev, ino
        self.fp, self.gen, self.cfg, self.node = fp, gen, cfg, node
        self.offset = offset
        self.key = f"{dev}:{ino}"
        self._parse = PARSERS[cfg.format]
        self._wrapped = cfg.format in ("cri", "docker")
        self._cri = cfg.format == "cri"
        self._grouper = (
            LineGrouper(cfg.multiline.start_pattern if cfg.multiline else None)
            if cfg.format == "text" else None
        )
        # Container logs are grouped per stream, only when asked to; else each line is an event.
        self._streams = (
            StreamGroups(cfg.multiline, cfg.max_line_bytes, self._emit, self._group_too_long)
            if self._wrapped and cfg.multiline else None
        )
        self._group_timeout = (cfg.multiline.timeout_ms if cfg.multiline else 1000) / 1000
        self._group_max_lines = cfg.multiline.max_lines if cfg.multiline else 500
        self._buf = b""
        self._buf_start = offset
        self._discarding = False
        self._group: Pending | None = None  # a text group
        # Without multiline: a container line's partial pieces, per stream (stdout and stderr
        # interleave in one file; a piece of one never joins the other's line).
        self._partials: dict[str | None, Pending] = {}
        self.shown = display_path(path)
        self._meta_base: dict[str, Any] = {"source": source, "file": self.shown}
        if kubernetes:
            self._meta_base["kubernetes"] = kubernetes
        self._uid = self._make_uid()
        # Lines of the current read that go out as one LineBatch (see _split).
        self._batching = batches and self._cri and not (self._streams is not None)
        self._pieces: list[bytes] = []
        self._offsets: list[int] = []
        self._times: list[int] = []
        self._stream_col: list[str | None] = []
        self.eof = False
        self.last_growth = time.monotonic()
        self.last_line = time.monotonic()
        self.rotated_at: float | None = None
        self.size = offset

    def set_kubernetes(self, kubernetes: dict[str, Any] | None) -> None:
        """Stamp ``kubernetes`` (never mutated afterwards) on this file's events from now on."""
        base = {k: v for k, v in self._meta_base.items() if k != "kubernetes"}
        if kubernetes:
            base["kubernetes"] = kubernetes
        self._meta_base = base

    def _make_uid(self) -> str:
        material = f"{self.node}:{self.dev}:{self.ino}:{self.fp}:{self.gen}".encode()
        return hashlib.blake2b(material, digest_size=8).hexdigest()

    @property
    def safe_offset(self) -> int:
        """Start of the first line not yet handed downstream in full (over every stream's group)."""
        if self._streams is not None:
            start = self._streams.start
            return self._buf_start if start is None else min(start, self._buf_start)
        if self._partials:
            return min(self._buf_start, *(p.start for p in self._partials.values()))
        return self._group.start if self._group is not None else self._buf_start

    @property
    def pending_group(self) -> bool:
        """Whether lines wait in a group or a partial line (emitted by :meth:`flush_group`)."""
        return (self._group is not None or bool(self._partials)
                or (self._streams is not None and self._streams.pending))

    # -- reading --------------------------------------------------------------------------------

    def read(self, out: list[Item], budget: int, between: Callable[[], None] | None = None) -> int:
        """Read up to ``budget`` bytes, appending complete events to ``out``; returns bytes read.

        ``between`` runs after each chunk (the source looks for new files there).
        """
        total = 0
        while total < budget:
            if between is not None and total:
                between()
            data = os.pread(self.fd, self.cfg.read_chunk_bytes, self.offset)
            if not data:
                self.eof = True
                break
            self.eof = False
            start = self.offset
            self.offset += len(data)
            total += len(data)
            if self._buf:
                data = self._buf + data
                start = self._buf_start
            self._split(data, start, out)
        self._close_lines(out)
        if self._streams is not None:
            self._streams.flush_expired(out, time.monotonic())
        if total:
            now = time.monotonic()
            self.last_growth = now
            metrics.BYTES_RECEIVED.labels(self.source).inc(total)
        return total

    def _split(self, data: bytes, start: int, out: list[Item]) -> None:
        if self._discarding and b"\n" not in data:
            # Still inside an overlong line whose head was already emitted: skip, keep nothing.
            self._buf = b""
            self._buf_start = start + len(data)
            return
        lines = data.split(b"\n")
        rest = lines.pop()
        pos = start
        max_line = self.cfg.max_line_bytes
        cri = self._cri
        if self._batching:
            pos = self._split_batched(lines, pos, data.isascii(), out)
            lines = []
        for raw in lines:
            off = pos
            pos += len(raw) + 1
            if self._discarding:
                self._discarding = False
                continue
            if cri and not self._partials and len(raw) <= max_line and self._cri_full_line(raw, off, out):
                continue
            truncated = len(raw) > max_line
            self._line(raw[:max_line] if truncated else raw, off, truncated, out)
        self._buf = rest
        self._buf_start = pos
        if len(rest) > max_line:
            # A line longer than the limit with no newline yet: emit its head now, skip the rest.
            self._line(rest[:max_line], pos, True, out)
            self._discarding = True
            self._buf = b""
            self._buf_start = pos + len(rest)

    def _split_batched(self, lines: list[bytes], pos: int, valid: bool, out: list[Item]) -> int:
        """:meth:`_split`'s loop when whole container lines go into LineBatch columns; returns the
        offset after the last line.

        The common line (``<time> <stream> F {"timestamp":"...SS.fffZ",...}``, its second seen
        before) is taken inline; other whole lines through :meth:`_batch_line`, the rest as events.
        ``valid``: every line is ASCII (so valid UTF-8).
        """
        max_line = self.cfg.max_line_bytes
        add_piece, add_offset = self._pieces.append, self._offsets.append
        add_time, add_stream = self._times.append, self._stream_col.append
        secs_of, names, scale, head = _SECS, _STREAM_NAMES, _FRACTION_SCALE, _TS_FIRST_BYTES
        partials = self._partials  # changed in place only
        if self._discarding and lines:
            self._discarding = False  # the rest of an overlong line whose head was emitted
            pos += len(lines[0]) + 1
            lines = lines[1:]
        for raw in lines:
            off = pos
            n = len(raw)
            pos += n + 1
            if n <= max_line and not partials:
                parts = raw.split(b" ", 3)
                if len(parts) == 4 and parts[2] == b"F":
                    ts, msg = parts[0], parts[3]
                    # Inline: time field first, as "YYYY-MM-DDTHH:MM:SS.f...Z" (1-9 digits), like
                    # parse_rfc3339_ns's own fast path, from a cache of whole seconds in bytes.
                    if valid and msg[:_TS_FIRST_LEN] == head and len(ts) >= 20 and ts[4] == 45 \
                            and ts[10] in (84, 116) and msg[-1:] != b"\r" \
                            and (len(msg) <= _DEEP_BYTES or msg.count(b"{") + msg.count(b"[") <= _DEEP_BRACKETS):
                        end = msg.find(b'"', _TS_FIRST_LEN)
                        if 34 < end < 45 and msg[end - 1] == 90 and msg[33] == 46:  # "Z", "."
                            secs = secs_of.get(msg[14:33], _UNSEEN)
                            if secs is _UNSEEN:
                                secs = _whole_seconds_ns(msg[14:33])
                            frac = msg[34 : end - 1]
                            if secs is not None and frac.isdigit():
                                rts = secs + int(frac) * scale[len(frac)]
                                if rts:
                                    add_piece(msg)
                                    add_offset(off)
                                    add_time(rts)
                                    add_stream(names.get(parts[1]) or parts[1].decode() or None)
                                    continue
                    if self._batch_line(parts, off, valid):
                        continue
                if self._cri_full_line(raw, off, out):
                    continue
            truncated = n > max_line
            self._line(raw[:max_line] if truncated else raw, off, truncated, out)
        return pos

    def _batch_line(self, parts: list[bytes], off: int, valid: bool) -> bool:
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
        if msg.startswith(_TS_FIRST_BYTES):
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
        self._pieces.append(msg)
        self._offsets.append(off)
        self._times.append(rts)
        stream = parts[1]
        self._stream_col.append(_STREAM_NAMES.get(stream) or stream.decode() or None)
        return True

    def _close_lines(self, out: list[Item]) -> None:
        """Hand on the lines gathered so far as one LineBatch (before any event that follows them)."""
        if self._offsets:
            # Copied, then emptied in place: _split_batched holds these very lists.
            self._pieces.append(b"")
            out.append(LineBatch(self._meta_base, self._uid, b"\n".join(self._pieces), self._offsets.copy(),
                                 self._times.copy(), self._stream_col.copy()))
            for column in (self._pieces, self._offsets, self._times, self._stream_col):
                column.clear()

    def _cri_full_line(self, raw: bytes, off: int, out: list[Item]) -> bool:
        """The common case, inline: a whole (``F``) valid UTF-8 CRI line. False: take the general path."""
        try:
            parts = raw.decode("utf-8").split(" ", 3)
        except UnicodeDecodeError:
            return False
        if len(parts) != 4 or parts[2] != "F":
            return False
        ts, msg = parts[0], parts[3]
        if len(ts) < 20 or ts[4] != "-" or ts[10] not in "Tt" or msg.endswith("\r"):
            return False
        if self._streams is not None:
            self._streams.add(msg, ts, parts[1], False, off, False, out)
        else:
            self._emit(msg, ts, parts[1], off, False, out)
        return True

    def _line(self, raw: bytes, off: int, truncated: bool, out: list[Item]) -> None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            metrics.INPUT_ERRORS.labels(self.source, "invalid_utf8").inc()
            text = raw.decode("utf-8", "replace")
        if text.endswith("\r"):
            text = text[:-1]
        if truncated:
            metrics.INPUT_ERRORS.labels(self.source, "line_too_long").inc()
            log.warning("%s: line at offset %d longer than %d bytes, truncated", self.shown, off,
                        self.cfg.max_line_bytes)
        try:
            u = self._parse(text)
        except FormatError as exc:
            metrics.INPUT_ERRORS.labels(self.source, "bad_format").inc()
            log.warning("%s: skipping line at offset %d: %s", self.shown, off, exc)
            return
        if self._streams is not None:
            self._streams.add(u.payload, u.ts_text, u.stream, u.partial, off, truncated, out)
            return
        if self._wrapped:
            key = u.stream if u.stream in STREAMS else None
            pending = self._partials.get(key)
            if pending is not None or u.partial:
                if pending is None:
                    pending = self._partials[key] = Pending(off, u.ts_text, u.stream)
                if pending.add(u.payload, self.cfg.max_line_bytes, truncated):
                    self._group_too_long()
                if u.partial:
                    return
                del self._partials[key]
                self._emit(pending.text(), pending.ts, pending.stream, pending.start, pending.truncated, out)
                return
            self._emit(u.payload, u.ts_text, u.stream, off, truncated, out)
            return
        if self._grouper is not None:
            group = self._group
            if self._grouper.continues(text, group is not None) and group is not None \
                    and len(group.pieces) < self._group_max_lines:
                self._add_to_group("\n" + text, off, None, None, truncated)
                return
            self.flush_group(out)
            self._add_to_group(text, off, None, None, truncated)
            self.last_line = time.monotonic()
            return
        self._emit(text, None, None, off, truncated, out)

    def _add_to_group(self, piece: str, off: int, ts: str | None, stream: str | None, truncated: bool) -> None:
        group = self._group
        if group is None:
            group = self._group = Pending(off, ts, stream)
        if group.add(piece, self.cfg.max_line_bytes, truncated):
            self._group_too_long()

    def _group_too_long(self) -> None:
        metrics.INPUT_ERRORS.labels(self.source, "line_too_long").inc()

    def flush_group(self, out: list[Item]) -> None:
        """Emit everything pending (a text group, partial lines, every stream's group), each as one event."""
        if self._streams is not None:
            self._streams.flush_all(out)
        if self._partials:
            pieces = sorted(self._partials.values(), key=lambda p: p.start)
            self._partials.clear()
            for p in pieces:
                self._emit(p.text(), p.ts, p.stream, p.start, p.truncated, out)
        group = self._group
        if group is None:
            return
        self._group = None
        self._emit(group.text(), group.ts, group.stream, group.start, group.truncated, out)

    def group_expired(self) -> bool:
        """A text group waited ``multiline.timeout_ms`` with no new line: it is complete.

        Container groups never wait for this: :meth:`read` flushes each stream's group as it
        expires, so a quiet stream never cuts another stream's group or partial line short.
        """
        return (
            self._grouper is not None and self._group is not None
            and time.monotonic() - self.last_line >= self._group_timeout
        )

    def _emit(self, payload: str, ts: str | None, stream: str | None, off: int, truncated: bool,
              out: list[Item], record: dict[str, Any] | None = None) -> None:
        """Append the event for ``payload`` (``record``: already parsed from it, if it was)."""
        rts: int | None = None
        if payload.startswith(_TS_FIRST):
            # logging_config puts "timestamp" first: take the time without parsing the record,
            # which is parsed later only if a sink needs its fields.
            end = payload.find('"', _TS_FIRST_LEN)
            rts = parse_rfc3339_ns(payload[_TS_FIRST_LEN:end]) if end > 0 else None
        if rts is None:
            if record is None:
                record = record_from_payload(payload)
            if len(record) > 1 or "message" not in record:
                rts = record_time_ns(record)
        else:
            record = None  # a record given is dropped too: batched events stay small (and cheap to collect)
        if rts is None and ts is not None:
            rts = parse_rfc3339_ns(ts)
        if self._offsets:
            self._close_lines(out)
        meta = {**self._meta_base, "offset": off, "id": f"{self._uid}:{off}"}
        if stream:
            meta["stream"] = stream
        if truncated:
            meta["truncated"] = True
        out.append(Event(record, payload, rts or time.time_ns(), meta, True))

    # -- file state -----------------------------------------------------------------------------

    def check_truncated(self) -> bool:
        """copytruncate: the file shrank below our offset or its first line changed. Restart at 0."""
        try:
            st = os.fstat(self.fd)
        except OSError:
            return False
        self.size = st.st_size
        if st.st_size >= self.offset:
            if self.offset == 0 or st.st_size == 0:
                return False
            fp = fingerprint(self.fd)
            if fp is None or fp == self.fp:
                return False
            if self.fp == 0:  # first line completed after a truncation: learn it
                self.fp = fp
                return False
        log.warning("%s: truncated (size %d < offset %d or first line changed); reading from the start",
                    self.shown, st.st_size, self.offset)
        metrics.INPUT_ERRORS.labels(self.source, "truncated").inc()
        self.gen += 1
        self.offset = 0
        self._buf = b""
        self._buf_start = 0
        self._group = None
        self._partials.clear()
        if self._streams is not None:
            self._streams.clear()
        self._discarding = False
        self.fp = fingerprint(self.fd) or 0
        self._uid = self._make_uid()
        return True

    def lag_bytes(self) -> int:
        return max(0, self.size - self.offset)

    def close(self) -> None:
        os.close(self.fd)
