"""Write events as NDJSON lines to files named by strftime over each event's UTC time."""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict
from pathlib import Path

import orjson

from shipper.event import Event
from shipper.lines import LineBatch
from shipper.sinks._common.base import Sink
from shipper.sinks._common.outcome import SendOutcome
from shipper.sinks.file.config import FileSinkConfig


def encode_line(event: Event, encoding: str) -> bytes:
    """One NDJSON line: the original line, or the whole event as JSON."""
    if encoding == "raw":
        return event.raw.encode("utf-8", "replace") + b"\n"
    return orjson.dumps(
        {"ts_ns": event.ts_ns, "record": event.record, "meta": event.meta}, default=str
    ) + b"\n"


# What encoding one event can raise: orjson.JSONEncodeError is a TypeError, UnicodeError a ValueError,
# and gmtime/strftime raise OverflowError or ValueError for a time they cannot represent.
_ENCODE_ERRORS = (TypeError, ValueError, OverflowError)


class FileSink(Sink[FileSinkConfig]):
    """Appends each batch with one write per output file (a batch is accepted once written)."""

    def _path_for(self, ts_ns: int) -> str:
        return time.strftime(self.config.path, time.gmtime(ts_ns // 1_000_000_000))

    @property
    def accepts_lines(self) -> bool:  # type: ignore[override]
        """Raw lines to one file are written straight from a line batch's bytes."""
        return self.config.encoding == "raw" and "%" not in self.config.path

    async def send_lines(self, batches: list[LineBatch]) -> SendOutcome | None:
        if not self.accepts_lines:
            return None
        data = b"".join(b.data for b in batches)  # each line already ends with a newline
        await self._write(self.config.path, data)
        return SendOutcome(sent_bytes=len(data))

    async def _write(self, path: str, data: bytes) -> None:
        if self.config.fsync:
            await asyncio.to_thread(_append, path, data, True)
        else:
            _append(path, data, False)

    async def send(self, events: list[Event]) -> SendOutcome:
        try:
            groups = self._encode(events)
            rejected: list[tuple[Event, str]] = []
        except _ENCODE_ERRORS:
            groups, rejected = self._encode_each(events)
        total = 0
        for path, lines in groups.items():
            data = b"".join(lines)
            total += len(data)
            await self._write(path, data)
        return SendOutcome(rejected=rejected, sent_bytes=total)

    def _encode(self, events: list[Event]) -> dict[str, list[bytes]]:
        """Encoded lines by output path."""
        groups: dict[str, list[bytes]] = defaultdict(list)
        enc = self.config.encoding
        if "%" in self.config.path:
            for e in events:
                groups[self._path_for(e.ts_ns)].append(encode_line(e, enc))
        else:
            groups[self.config.path] = [encode_line(e, enc) for e in events]
        return groups

    def _encode_each(self, events: list[Event]) -> tuple[dict[str, list[bytes]], list[tuple[Event, str]]]:
        """Like :meth:`_encode`, event by event: one that cannot be encoded is rejected alone."""
        groups: dict[str, list[bytes]] = defaultdict(list)
        rejected = []
        for e in events:
            try:
                one = self._encode([e])
            except _ENCODE_ERRORS as exc:
                rejected.append((e, f"cannot encode: {type(exc).__name__}: {exc}"))
                continue
            for path, lines in one.items():
                groups[path].extend(lines)
        return groups, rejected

    async def healthcheck(self) -> None:
        parent = Path(self._path_for(time.time_ns())).parent
        parent.mkdir(parents=True, exist_ok=True)


def _append(path: str, data: bytes, fsync: bool) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
