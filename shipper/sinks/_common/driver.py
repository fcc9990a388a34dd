"""The one loop every sink runs in: read the buffer, batch, send, retry, dead-letter, acknowledge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx

from shipper import metrics
from shipper.buffer import DiskBuffer
from shipper.event import Event
from shipper.sinks._common.base import Sink
from shipper.sinks._common.config import SinkConfigBase
from shipper.sinks._common.dead_letter import DeadLetterWriter
from shipper.sinks._common.outcome import PermanentSinkError, SendOutcome, TransientSinkError
from shipper.sinks._common.retry import backoff_delay

log = logging.getLogger("shipper.sinks")

_UNEXPECTED_ATTEMPTS = 10


def split_batches(events: list[Event], max_events: int, max_bytes: int, size: Any) -> Iterator[list[Event]]:
    """Cut ``events`` into consecutive batches within both limits (an oversize event goes alone)."""
    batch: list[Event] = []
    nbytes = 0
    for e in events:
        s = size(e)
        if batch and (len(batch) >= max_events or nbytes + s > max_bytes):
            yield batch
            batch, nbytes = [], 0
        batch.append(e)
        nbytes += s
    if batch:
        yield batch


class SinkDriver:
    """Runs one sink: ``request.concurrency`` workers over its disk buffer."""

    def __init__(self, sink: Sink, buffer: DiskBuffer, config: SinkConfigBase, data_dir: str) -> None:
        self.sink = sink
        self.buffer = buffer
        self.config = config
        self.dead = DeadLetterWriter(data_dir, sink.name)
        self.healthy: bool | None = None if config.healthcheck else True
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def name(self) -> str:
        return self.sink.name

    async def start(self) -> None:
        await self.sink.start()
        if self.config.healthcheck:
            self._tasks.append(asyncio.create_task(self._healthcheck(), name=f"health-{self.name}"))
        for i in range(self.config.request.concurrency):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"sink-{self.name}-{i}"))

    async def _healthcheck(self) -> None:
        delay = 1.0
        while not self._stopping:
            try:
                await self.sink.healthcheck()
            except Exception as exc:  # any failure is reported, never fatal
                if self.healthy is not False:
                    log.error("sink %s: healthcheck failed: %s", self.name, exc)
                self.healthy = False
                metrics.SINK_UP.labels(self.name).set(0)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            log.info("sink %s: healthcheck passed", self.name)
            self._mark_healthy()
            return

    def _mark_healthy(self) -> None:
        self.healthy = True
        metrics.SINK_UP.labels(self.name).set(1)

    async def _worker(self) -> None:
        b = self.config.batch
        while not self._stopping:
            chunks = await self.buffer.read(b.max_events, b.max_bytes, b.timeout_secs)
            if not chunks:
                if self.buffer.closed:
                    return
                continue
            events = [e for c in chunks for e in c.events]
            if len(events) <= b.max_events and sum(c.size for c in chunks) <= b.max_bytes:
                await self.deliver(events)  # already within both limits: no per-event sizing
            else:
                for batch in split_batches(events, b.max_events, b.max_bytes, self.sink.event_size):
                    await self.deliver(batch)
            self.buffer.ack(chunks)

    async def deliver(self, events: list[Event]) -> None:
        """Send until every event is accepted or dead-lettered (retrying transient failures)."""
        pending = events
        attempt = 0
        unexpected = 0
        retry_cfg = self.config.request.retry
        while pending:
            attempt += 1
            t0 = time.perf_counter()
            try:
                outcome = await self.sink.send(pending)
                status = "ok" if not (outcome.retry or outcome.rejected) else "partial"
            except TransientSinkError as exc:
                outcome = SendOutcome(retry=pending, reason=exc.reason, retry_after=exc.retry_after)
                status = "error"
            except PermanentSinkError as exc:
                outcome = SendOutcome(rejected=[(e, exc.reason) for e in pending], reason=exc.reason)
                status = "rejected"
            except (httpx.TransportError, TimeoutError, OSError) as exc:
                outcome = SendOutcome(retry=pending, reason=f"{type(exc).__name__}: {exc}")
                status = "error"
            except Exception as exc:
                unexpected += 1
                log.exception("sink %s: unexpected error sending %d events", self.name, len(pending))
                reason = f"unexpected {type(exc).__name__}: {exc}"
                if unexpected >= _UNEXPECTED_ATTEMPTS:
                    outcome = SendOutcome(rejected=[(e, reason) for e in pending], reason=reason)
                else:
                    outcome = SendOutcome(retry=pending, reason=reason)
                status = "error"
            metrics.REQUEST_DURATION.labels(self.name, status).observe(time.perf_counter() - t0)
            try:
                self._record(pending, outcome)
            except OSError as exc:
                # The dead-letter file could not be written: keep those events, try again later.
                log.error("sink %s: cannot write dead letters (%s); keeping them buffered", self.name, exc)
                outcome.retry.extend(e for e, _r in outcome.rejected)
                outcome.rejected = []
                outcome.reason = f"dead-letter write failed: {exc}"
            if not outcome.retry:
                return
            if retry_cfg.max_attempts is not None and attempt >= retry_cfg.max_attempts:
                reason = f"gave up after {attempt} attempts: {outcome.reason}"
                self._dead_letter([(e, reason) for e in outcome.retry])
                return
            delay = backoff_delay(attempt, retry_cfg, outcome.retry_after)
            metrics.RETRIES.labels(self.name, _reason_label(outcome.reason)).inc()
            log.warning("sink %s: %d events not accepted (%s); retry %d in %.2fs", self.name,
                        len(outcome.retry), outcome.reason, attempt, delay)
            await asyncio.sleep(delay)
            pending = outcome.retry

    def _record(self, sent: list[Event], outcome: SendOutcome) -> None:
        accepted = len(sent) - len(outcome.retry) - len(outcome.rejected)
        if accepted > 0:
            metrics.EVENTS_SENT.labels(self.name).inc(accepted)
            metrics.BATCH_EVENTS.labels(self.name).observe(len(sent))
            if outcome.sent_bytes:
                metrics.BYTES_SENT.labels(self.name).inc(outcome.sent_bytes)
                metrics.BATCH_BYTES.labels(self.name).observe(outcome.sent_bytes)
            metrics.LAST_SUCCESS.labels(self.name).set(time.time())
            if self.healthy is not True:
                self._mark_healthy()
        self._dead_letter(outcome.rejected)

    def _dead_letter(self, rejected: list[tuple[Event, str]]) -> None:
        if not rejected:
            return
        self.dead.write(rejected)
        by_reason: dict[str, int] = {}
        for _e, r in rejected:
            label = _reason_label(r)
            by_reason[label] = by_reason.get(label, 0) + 1
        for label, n in by_reason.items():
            metrics.EVENTS_FAILED.labels(self.name, label).inc(n)
        log.error("sink %s: %d events dead-lettered to %s (first reason: %s)", self.name, len(rejected),
                  self.dead.path, rejected[0][1])

    async def stop(self, timeout: float) -> None:
        """Let in-flight batches finish within ``timeout``; what is not acknowledged stays buffered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Drain what is buffered while the backend takes it; the rest waits on disk for next start.
        while self.buffer.pending_events > 0 and loop.time() < deadline and self.healthy is not False:
            await asyncio.sleep(0.05)
        self._stopping = True
        await self.buffer.close()
        remaining = max(0.1, deadline - loop.time())
        done, pending = await asyncio.wait(self._tasks, timeout=remaining) if self._tasks else (set(), set())
        for t in pending:
            t.cancel()
        for t in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for t in done:
            if not t.cancelled() and t.exception():
                log.error("sink %s worker failed: %r", self.name, t.exception())
        await self.sink.close()


def _reason_label(reason: str) -> str:
    """A low-cardinality label from a free-text reason (its first words)."""
    word = reason.split(":", 1)[0].strip().lower().replace(" ", "_")
    return word[:40] or "unknown"
