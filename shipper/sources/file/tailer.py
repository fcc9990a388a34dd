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
from shipper.event import Event
from shipper.lines import Item, split_lines
from shipper.sources.file.columns import LineColumns
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.formats import PARSERS, FormatError
from shipper.sources.file.multiline import STREAMS, LineGrouper, Pending, StreamGroups
from shipper.sources.file.paths import display_path
from shipper.sources.records import parse_rfc3339_ns, record_from_payload, record_time_ns

log = logging.getLogger("shipper.sources.file")

FP_BYTES = 1024
_TS_FIRST = '{"timestamp":"'
_TS_FIRST_LEN = len(_TS_FIRST)
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
        self._columns = LineColumns()
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
        self._columns.close(self._meta_base, self._uid, out)
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
        lines, rest = split_lines(data, keep_newlines=self._batching)
        pos = start
        max_line = self.cfg.max_line_bytes
        cri = self._cri
        if self._batching:
            if self._discarding and lines:
                self._discarding = False  # the rest of an overlong line whose head was emitted
                pos += len(lines[0])
                lines = lines[1:]
            pos = self._columns.split(lines, pos, data.isascii(), max_line, self._partials,
                                      lambda raw, off: self._other_line(raw, off, out))
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

    def _other_line(self, raw: bytes, off: int, out: list[Item]) -> None:
        """A line the columns did not take: an event of its own (or a piece of one)."""
        max_line = self.cfg.max_line_bytes
        if len(raw) <= max_line and not self._partials and self._cri_full_line(raw, off, out):
            return
        truncated = len(raw) > max_line
        self._line(raw[:max_line] if truncated else raw, off, truncated, out)

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
        if self._columns:
            self._columns.close(self._meta_base, self._uid, out)
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
