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
from shipper.buffer import Chunk, DiskBuffer
from shipper.event import Event
from shipper.sinks._common.base import Sink
from shipper.sinks._common.config import SinkConfigBase
from shipper.sinks._common.dead_letter import DeadLetterWriter
from shipper.sinks._common.outcome import PermanentSinkError, SendOutcome, TransientSinkError
from shipper.sinks._common.retry import backoff_delay

log = logging.getLogger("shipper.sinks")

# Deliveries of one read that raised (outside the sink's own error handling) before its events are
# dead-lettered rather than tried again.
_READ_ATTEMPTS = 5


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
    """Runs one sink: ``request.concurrency`` workers over its disk buffer, and their supervisor.

    A failure caused by one event (the sink cannot encode it, its dead letter cannot be written)
    costs that event alone; a batch-level failure is retried; nothing is retried forever. A worker
    that ends anyway (its buffer read failed, a bug) is restarted with backoff by the supervisor,
    and resumes the read it held, which was never acknowledged.
    """

    def __init__(self, sink: Sink, buffer: DiskBuffer, config: SinkConfigBase, data_dir: str) -> None:
        self.sink = sink
        self.buffer = buffer
        self.config = config
        self.dead = DeadLetterWriter(data_dir, sink.name)
        self.healthy: bool | None = None if config.healthcheck else True
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: list[asyncio.Task[None]] = []
        self._held: list[list[Chunk]] = []  # per worker: the read it has not acknowledged yet
        self._component = f"sink:{sink.name}"

    @property
    def name(self) -> str:
        return self.sink.name

    @property
    def up(self) -> bool:
        """Whether every delivery worker is running (False before start, during a restart, after stop)."""
        return bool(self._workers) and not self._stopping and not any(t.done() for t in self._workers)

    async def start(self) -> None:
        await self.sink.start()
        if self.config.healthcheck:
            self._tasks.append(asyncio.create_task(self._healthcheck(), name=f"health-{self.name}"))
        n = self.config.request.concurrency
        self._held = [[] for _ in range(n)]
        self._workers = [self._spawn(i) for i in range(n)]
        self._tasks.extend(self._workers)
        self._tasks.append(asyncio.create_task(self._supervise(), name=f"supervise-{self.name}"))
        metrics.COMPONENT_UP.labels(self._component).set(1)

    def _spawn(self, slot: int) -> asyncio.Task[None]:
        return asyncio.create_task(self._worker(slot), name=f"sink-{self.name}-{slot}")

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

    async def _supervise(self) -> None:
        """Restart each worker that ended while the sink runs; COMPONENT_UP is 0 until all run again."""
        loop = asyncio.get_running_loop()
        restarts = [0] * len(self._workers)  # quick successive restarts of a slot, for its backoff
        started = [loop.time()] * len(self._workers)
        retry = self.config.request.retry
        while True:
            await asyncio.wait(self._workers, return_when=asyncio.FIRST_COMPLETED)
            if self._stopping or self.buffer.closed:  # workers end when their buffer is closed
                return
            down = [i for i, t in enumerate(self._workers) if t.done()]
            metrics.COMPONENT_UP.labels(self._component).set(0)
            for i in down:
                task = self._workers[i]
                exc = None if task.cancelled() else task.exception()
                log.error("sink %s: delivery worker %d stopped (%s); restarting it", self.name, i,
                          "cancelled" if task.cancelled() else repr(exc), exc_info=exc)
                if loop.time() - started[i] > 2 * retry.max_backoff_secs:
                    restarts[i] = 0  # it had been running well: not a crash loop
            delay = max(min(retry.max_backoff_secs, retry.initial_backoff_secs * 2 ** min(restarts[i], 30))
                        for i in down)
            await asyncio.sleep(delay)
            if self._stopping:
                return
            for i in down:
                old = self._workers[i]
                self._workers[i] = self._spawn(i)
                self._tasks[self._tasks.index(old)] = self._workers[i]
                restarts[i] += 1
                started[i] = loop.time()
                metrics.COMPONENT_RESTARTS.labels(self._component).inc()
            metrics.COMPONENT_UP.labels(self._component).set(1)

    async def _worker(self, slot: int) -> None:
        """Read, deliver, acknowledge. A buffer error ends the task (the supervisor restarts it);
        an error delivering a read is retried here, and that read stays unacknowledged until done."""
        b = self.config.batch
        while not self._stopping:
            chunks = self._held[slot]
            if not chunks:
                chunks = await self.buffer.read(b.max_events, b.max_bytes, b.timeout_secs)
                if not chunks:
                    if self.buffer.closed:
                        return
                    continue
                self._held[slot] = chunks
            if await self._deliver_read(chunks):
                self._held[slot] = []
                self.buffer.ack(chunks)

    async def _deliver_read(self, chunks: list[Chunk]) -> bool:
        """Deliver the events of one read; False if stopping before it was done (left unacknowledged)."""
        retry = self.config.request.retry
        failures = 0
        while not self._stopping:
            try:
                await self._deliver_chunks(chunks)
                return True
            except Exception as exc:  # a bug outside the sink's own error handling: never fatal
                failures += 1
                events = [e for c in chunks for e in c.events]
                if failures == 1:
                    log.exception("sink %s: error delivering %d events; retrying them", self.name, len(events))
                if failures >= _READ_ATTEMPTS:
                    reason = f"delivery failed {failures} times: {type(exc).__name__}: {exc}"
                    self._dead_letter([(e, reason) for e in events])
                    return True
                await asyncio.sleep(backoff_delay(failures, retry))
        return False

    async def _deliver_chunks(self, chunks: list[Chunk]) -> None:
        b = self.config.batch
        events = [e for c in chunks for e in c.events]
        if len(events) <= b.max_events and sum(c.size for c in chunks) <= b.max_bytes:
            await self.deliver(events)  # already within both limits: no per-event sizing
        else:
            for batch in split_batches(events, b.max_events, b.max_bytes, self._event_size):
                await self.deliver(batch)

    def _event_size(self, event: Event) -> int:
        try:
            return self.sink.event_size(event)
        except Exception:  # sizing one odd event must not fail its read: estimate from the raw line
            return len(event.raw) + 64

    async def deliver(self, events: list[Event]) -> None:
        """Send until every event is accepted or dead-lettered (retrying transient failures).

        An unexpected exception from ``send`` (a bug, or an event the sink cannot encode) splits
        the batch in halves sent on their own, until the events causing it are alone: such an
        event is dead-lettered with the exception as the reason, its neighbours are delivered.
        """
        await self._deliver(events, isolating=False)

    async def _deliver(self, events: list[Event], isolating: bool) -> None:
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
                reason = f"unexpected {type(exc).__name__}: {exc}"
                if not isolating:
                    log.exception("sink %s: unexpected error sending %d events", self.name, len(pending))
                if len(pending) > 1:
                    metrics.REQUEST_DURATION.labels(self.name, "error").observe(time.perf_counter() - t0)
                    mid = len(pending) // 2
                    await self._deliver(pending[:mid], isolating=True)
                    await self._deliver(pending[mid:], isolating=True)
                    return
                if isolating or unexpected > 1:
                    # Failed in its batch and alone, or alone twice: this event is the cause.
                    outcome = SendOutcome(rejected=[(pending[0], reason)], reason=reason)
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
        """Write dead letters; OSError (the disk) propagates so the caller keeps the events buffered."""
        if not rejected:
            return
        try:
            self.dead.write(rejected)
        except OSError:
            raise
        except Exception:
            # One entry the writer cannot encode must not keep its neighbours out of the file.
            rejected = self._dead_letter_each(rejected)
            if not rejected:
                return
        by_reason: dict[str, int] = {}
        for _e, r in rejected:
            label = _reason_label(r)
            by_reason[label] = by_reason.get(label, 0) + 1
        for label, n in by_reason.items():
            metrics.EVENTS_FAILED.labels(self.name, label).inc(n)
        log.error("sink %s: %d events dead-lettered to %s (first reason: %s)", self.name, len(rejected),
                  self.dead.path, rejected[0][1])

    def _dead_letter_each(self, rejected: list[tuple[Event, str]]) -> list[tuple[Event, str]]:
        """Write entries one by one; an entry that cannot be written is dropped and counted."""
        written = []
        for item in rejected:
            try:
                self.dead.write([item])
            except OSError:
                raise
            except Exception as exc:
                metrics.EVENTS_DROPPED.labels(self._component, "dead_letter_unwritable").inc()
                log.error("sink %s: dropped an event whose dead letter cannot be written (%s: %s); "
                          "it was rejected for: %s", self.name, type(exc).__name__, exc, item[1][:200])
            else:
                written.append(item)
        return written

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
        metrics.COMPONENT_UP.labels(self._component).set(0)
        await self.sink.close()


def _reason_label(reason: str) -> str:
    """A low-cardinality label from a free-text reason (its first words)."""
    word = reason.split(":", 1)[0].strip().lower().replace(" ", "_")
    return word[:40] or "unknown"
