"""The buffer loop every sink runs in: read the buffer, batch, hand batches to the delivery, acknowledge.

Sending, retries and dead letters are :class:`~.delivery.Delivery`'s; the driver owns the workers
that read the sink's disk buffer, acknowledges what the delivery finished, supervises the workers
and runs the healthcheck.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from shipper import metrics
from shipper.buffer import Chunk, DiskBuffer
from shipper.sinks._common.base import Sink
from shipper.sinks._common.config import SinkConfigBase
from shipper.sinks._common.dead_letter import DeadLetterWriter
from shipper.sinks._common.delivery import Delivery
from shipper.sinks._common.retry import backoff_delay

log = logging.getLogger("shipper.sinks")

# Deliveries of one read that raised (outside the sink's own error handling) before its events are
# dead-lettered rather than tried again.
_READ_ATTEMPTS = 5


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
        self.delivery = Delivery(sink, config.request.retry, DeadLetterWriter(data_dir, sink.name),
                                 on_accepted=self._on_accepted)
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
    def dead(self) -> DeadLetterWriter:
        """Where this sink's dead letters go."""
        return self.delivery.dead

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

    def _on_accepted(self) -> None:
        if self.healthy is not True:
            self._mark_healthy()

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
                chunks = await self.buffer.read(b.max_events, b.max_bytes, b.timeout_secs, round_up=True)
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
                    self.delivery.dead_letter([(e, reason) for e in events])
                    return True
                await asyncio.sleep(backoff_delay(failures, retry))
        return False

    async def _deliver_chunks(self, chunks: list[Chunk]) -> None:
        b = self.config.batch
        if self.sink.accepts_lines:
            batches = [c.batches for c in chunks]
            if all(batches):
                await self.delivery.deliver_lines([x for part in batches for x in part or ()], b)
                return
        events = [e for c in chunks for e in c.events]
        if len(events) <= b.max_events and sum(c.size for c in chunks) <= b.max_bytes:
            await self.delivery.deliver(events)  # already within both limits: no per-event sizing
        else:
            await self.delivery.deliver_all(events, b)

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

