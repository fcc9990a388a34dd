"""An append-only, checksummed, segmented disk buffer with in-order acknowledgement.

Sources append batches; each batch is one record of a segment file (:mod:`shipper.buffer.segments`).
A sink reads records in order and acknowledges them when its backend accepted them; the
acknowledged position (``ack.json``) only moves over a contiguous prefix of acknowledged
records, so a crash at any moment re-delivers at most what was in flight, and loses nothing.
A torn or corrupt record is counted and skipped (the reader resynchronises on the next magic).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import orjson

from shipper import metrics
from shipper.buffer.rounding import wants_more
from shipper.buffer.segments import Damaged, encode_record, list_segments, read_record, scan_headers, segment_name
from shipper.event import Event
from shipper.lines import Item, LineBatch, count, flatten, halve, pack_items, unpack_items

log = logging.getLogger("shipper.buffer")


@dataclass(slots=True)
class Chunk:
    """One buffer record handed to a sink: its items (events and line batches, in order) and the
    token to acknowledge it with."""

    segment: int
    end: int
    size: int
    count: int
    items: list[Item]
    done: bool = False
    _events: list[Event] | None = field(default=None, repr=False)

    @property
    def events(self) -> list[Event]:
        """The record's events (a line batch's made once, on first use)."""
        if self._events is None:
            items = self.items
            self._events = items if all(type(it) is Event for it in items) else flatten(items)  # type: ignore[assignment]
        return self._events  # type: ignore[return-value]

    @property
    def batches(self) -> list[LineBatch] | None:
        """The record's line batches, if it holds nothing else."""
        items = self.items
        if items and all(type(it) is LineBatch for it in items):
            return items  # type: ignore[return-value]
        return None


class DiskBuffer:
    """The disk buffer of one sink (single process, single event loop)."""

    def __init__(
        self,
        directory: str | Path,
        name: str,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        when_full: Literal["block", "drop_newest"] = "block",
        fsync: Literal["always", "interval", "never"] = "interval",
        segment_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.dir = Path(directory)
        self.name = name
        self.max_bytes = max_bytes
        self.when_full = when_full
        self.fsync_policy = fsync
        self.segment_bytes = segment_bytes
        self.dir.mkdir(parents=True, exist_ok=True)
        self._changed = asyncio.Condition()
        self._outstanding: deque[Chunk] = deque()
        self._read_fds: dict[int, int] = {}
        self._dirty = False
        self._closed = False
        self.pending_bytes = 0
        self.pending_events = 0
        self._recover()
        metrics.BUFFER_MAX_BYTES.labels(name).set(max_bytes)
        self._update_gauges()

    # -- start-up -------------------------------------------------------------------------------

    def _segments(self) -> list[int]:
        return list_segments(self.dir)

    def _recover(self) -> None:
        segs = self._segments()
        ack_seg, ack_off = (segs[0] if segs else 0), 0
        try:
            state = orjson.loads((self.dir / "ack.json").read_bytes())
            ack_seg, ack_off = int(state["segment"]), int(state["offset"])
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            log.warning("buffer %s: unreadable ack.json (%s); re-reading from the oldest segment",
                        self.name, exc)
            ack_seg, ack_off = (segs[0] if segs else 0), 0
        for seg in segs:
            if seg < ack_seg:
                (self.dir / segment_name(seg)).unlink(missing_ok=True)
        segs = [s for s in segs if s >= ack_seg]
        if segs and segs[0] > ack_seg:
            ack_seg, ack_off = segs[0], 0
        self._ack_pos = (ack_seg, ack_off)
        self._read_pos = (ack_seg, ack_off)
        for seg in segs:
            start = ack_off if seg == ack_seg else 0
            size, events = scan_headers(self.dir / segment_name(seg), start)
            self.pending_bytes += size
            self.pending_events += events
        self._write_seg = (segs[-1] + 1) if segs else max(ack_seg, 1)
        self._write_fd = self._open_segment(self._write_seg)
        self._write_off = 0
        if not segs:
            self._ack_pos = self._read_pos = (self._write_seg, 0)
        if self.pending_events:
            log.info("buffer %s: resuming %d undelivered events (%d bytes)", self.name,
                     self.pending_events, self.pending_bytes)

    def _open_segment(self, seg: int) -> int:
        return os.open(self.dir / segment_name(seg), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    # -- writing --------------------------------------------------------------------------------

    async def append(self, events: Sequence[Item]) -> bool:
        """Write a batch of events (or of events and line batches) durably (per the fsync policy).
        Returns False if it was dropped (full)."""
        if not events:
            return True
        items = list(events)
        payload = pack_items(items)
        n = count(items)
        if len(payload) > self.max_bytes // 8 and n > 1:
            # Keep records small relative to the capacity so the bound holds without deadlock.
            first_half, second_half = halve(items, n)
            first = await self.append(first_half)
            return await self.append(second_half) and first
        record = encode_record(payload, n)
        if self.pending_bytes + len(record) > self.max_bytes and self.pending_bytes > 0:
            if self.when_full == "drop_newest":
                metrics.EVENTS_DROPPED.labels(self.name, "buffer_full").inc(n)
                return False
            metrics.BUFFER_BLOCKED.labels(self.name).set(1)
            log.warning("buffer %s full (%d bytes): holding sources back", self.name, self.pending_bytes)
            async with self._changed:
                await self._changed.wait_for(
                    lambda: self._closed or self.pending_bytes + len(record) <= self.max_bytes
                    or self.pending_bytes == 0
                )
            metrics.BUFFER_BLOCKED.labels(self.name).set(0)
            if self._closed:
                raise BufferClosed(self.name)
        await self._write_record(record)
        self._write_off += len(record)
        self.pending_bytes += len(record)
        self.pending_events += n
        if self.fsync_policy == "always":
            await asyncio.to_thread(os.fsync, self._write_fd)
        else:
            self._dirty = True
        if self._write_off >= self.segment_bytes:
            self._roll()
        self._update_gauges()
        async with self._changed:
            self._changed.notify_all()
        return True

    async def _write_record(self, record: bytes) -> None:
        """Append one record; on a full disk, undo the partial write and wait for space."""
        waited = False
        while True:
            try:
                written = os.write(self._write_fd, record)
                if written == len(record):
                    break
                raise OSError(errno.ENOSPC, "short write")
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                with contextlib.suppress(OSError):
                    os.ftruncate(self._write_fd, self._write_off)
                if self._closed:
                    raise BufferClosed(self.name) from exc
                if self._write_off > 0:
                    # Start a new segment so that delivered data in this one can be deleted.
                    self._roll()
                if not waited:
                    log.error("buffer %s: no space left on %s; holding sources back until there is",
                              self.name, self.dir)
                    metrics.BUFFER_BLOCKED.labels(self.name).set(1)
                    metrics.BUFFER_DISK_FULL.labels(self.name).inc()
                    waited = True
                async with self._changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), 1.0)
        if waited:
            log.warning("buffer %s: space is back, writing again", self.name)
            metrics.BUFFER_BLOCKED.labels(self.name).set(0)

    def _roll(self) -> None:
        if self.fsync_policy != "never":
            os.fsync(self._write_fd)
        os.close(self._write_fd)
        self._write_seg += 1
        self._write_fd = self._open_segment(self._write_seg)
        self._write_off = 0

    def sync(self) -> None:
        """fsync what was written (the ``interval`` policy calls this before checkpoints are saved)."""
        if self._dirty and self.fsync_policy != "never":
            os.fsync(self._write_fd)
        self._dirty = False

    # -- reading --------------------------------------------------------------------------------

    def _available(self) -> bool:
        return self._read_pos < (self._write_seg, self._write_off)

    async def read(self, max_events: int, max_bytes: int, timeout: float, *, round_up: bool = False) -> list[Chunk]:
        """Wait for data, then return records up to the limits, waiting up to ``timeout`` to fill.

        ``round_up``: a read whose first record reached a limit goes on with records already
        written (never waiting) while the limits would not divide it evenly
        (:mod:`~shipper.buffer.rounding`).
        """
        async with self._changed:
            await self._changed.wait_for(lambda: self._closed or self._available())
        chunks: list[Chunk] = []
        events = size = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            while events < max_events and size < max_bytes and self._available():
                chunk = self._read_one()
                if chunk is None:
                    continue
                chunks.append(chunk)
                events += chunk.count
                size += chunk.size
            if events >= max_events or size >= max_bytes or self._closed:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with self._changed:
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: self._closed or self._available()), remaining
                    )
            except TimeoutError:
                break
        if round_up and len(chunks) == 1 and (events >= max_events or size >= max_bytes):
            while wants_more(events, size, max_events, max_bytes) and self._available():
                chunk = self._read_one()
                if chunk is not None:
                    chunks.append(chunk)
                    events += chunk.count
                    size += chunk.size
        return chunks

    def _read_fd(self, seg: int) -> int | None:
        fd = self._read_fds.get(seg)
        if fd is None:
            try:
                fd = os.open(self.dir / segment_name(seg), os.O_RDONLY)
            except FileNotFoundError:
                return None
            self._read_fds[seg] = fd
        return fd

    def _read_one(self) -> Chunk | None:
        """Read the record at the read position; on corruption, skip and return None."""
        seg, off = self._read_pos
        fd = self._read_fd(seg)
        if fd is None:
            self._advance_segment(seg)
            return None
        found = read_record(fd, off, self._write_off if seg == self._write_seg else None)
        if found is None:
            self._advance_segment(seg)
            return None
        if isinstance(found, Damaged):
            self._corrupt(seg, off, found.end, found.reason)
            if found.segment_over:
                self._advance_segment(seg)
            else:
                self._read_pos = (seg, found.end)
            return None
        self._read_pos = (seg, found.end)
        try:
            items = unpack_items(found.payload)
        except Exception as exc:  # checksum passed but the payload does not decode: skip it
            self._corrupt(seg, off, found.end, f"undecodable payload: {exc}")
            return None
        chunk = Chunk(seg, found.end, found.size, found.count, items)
        self._outstanding.append(chunk)
        return chunk

    def _corrupt(self, seg: int, off: int, end: int, why: str) -> None:
        metrics.BUFFER_CORRUPT.labels(self.name).inc()
        log.error("buffer %s: skipping corrupt data in segment %d at offset %d (%s)", self.name, seg, off, why)
        # The skipped bytes count as delivered so the acknowledged position can move past them.
        skipped = Chunk(seg, end, max(0, end - off), 0, [], done=True)
        self._outstanding.append(skipped)
        self.ack([])

    def _advance_segment(self, seg: int) -> None:
        later = [s for s in self._segments() if s > seg]
        nxt = later[0] if later else self._write_seg
        if nxt == seg:
            return
        self._read_pos = (nxt, 0)
        self._outstanding.append(Chunk(nxt, 0, 0, 0, [], done=True))
        # Moving past a finished segment is progress in itself: it lets that segment be deleted.
        self.ack([])

    # -- acknowledgement ------------------------------------------------------------------------

    def ack(self, chunks: list[Chunk]) -> None:
        """Mark records delivered; the persisted position moves over the contiguous done prefix."""
        for c in chunks:
            c.done = True
        moved = False
        while self._outstanding and self._outstanding[0].done:
            c = self._outstanding.popleft()
            self._ack_pos = (c.segment, c.end)
            self.pending_bytes -= c.size
            self.pending_events -= c.count
            moved = True
        if not moved:
            return
        self.pending_bytes = max(self.pending_bytes, 0)
        self._persist_ack()
        self._delete_consumed()
        self._update_gauges()
        asyncio.get_running_loop().create_task(self._notify())

    def _persist_ack(self) -> None:
        """Save the acknowledged position; if the disk is full, the next acknowledgement retries
        (a stale position only means re-delivery after a crash, never loss)."""
        tmp = self.dir / "ack.json.tmp"
        try:
            tmp.write_bytes(orjson.dumps({"segment": self._ack_pos[0], "offset": self._ack_pos[1]}))
            os.replace(tmp, self.dir / "ack.json")
        except OSError as exc:
            log.error("buffer %s: cannot save the delivered position (%s)", self.name, exc)

    def _delete_consumed(self) -> None:
        ack_seg = self._ack_pos[0]
        for seg in list(self._read_fds):
            if seg < ack_seg:
                os.close(self._read_fds.pop(seg))
        for seg in self._segments():
            if seg < ack_seg and seg != self._write_seg:
                (self.dir / segment_name(seg)).unlink(missing_ok=True)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _update_gauges(self) -> None:
        metrics.BUFFER_BYTES.labels(self.name).set(self.pending_bytes)
        metrics.BUFFER_EVENTS.labels(self.name).set(self.pending_events)

    # -- shutdown -------------------------------------------------------------------------------

    async def close(self) -> None:
        """Wake every waiter, fsync and close files. Unacknowledged records stay for next start."""
        self._closed = True
        await self._notify()
        if self.fsync_policy != "never":
            with contextlib.suppress(OSError):
                os.fsync(self._write_fd)
        os.close(self._write_fd)
        for fd in self._read_fds.values():
            os.close(fd)
        self._read_fds.clear()

    @property
    def closed(self) -> bool:
        return self._closed


class BufferClosed(Exception):
    """The buffer was closed while a writer waited for space."""
