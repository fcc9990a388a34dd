"""Deliver batches to one sink: retries with backoff, isolation of surprises, dead letters, metrics.

The one delivery every path uses: the buffer workers of :class:`~.driver.SinkDriver`, archive
restore and dead-letter replay. :meth:`Delivery.deliver` returns when every event of the batch was
accepted or dead-lettered with a reason; only a dead-letter file that cannot be written (``OSError``)
ends it early, so the caller keeps those events (at least once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from shipper import metrics
from shipper.event import Event
from shipper.lines import LineBatch, count, flatten
from shipper.sinks._common.base import Sink
from shipper.sinks._common.batching import split_batches, split_line_batches
from shipper.sinks._common.config import BatchConfig, RetryConfig
from shipper.sinks._common.dead_letter import DeadLetterWriter
from shipper.sinks._common.outcome import SendOutcome, error_outcome
from shipper.sinks._common.retry import backoff_delay

log = logging.getLogger("shipper.sinks")


@dataclass(slots=True)
class DeliveryReport:
    """How the events of one or more batches ended: ``accepted + dead_lettered + dropped`` of them.

    ``dropped`` events were rejected and their dead letter could not be encoded (counted in
    ``ecvi_shipper_events_dropped_total``).
    """

    accepted: int = 0
    dead_lettered: int = 0
    dropped: int = 0

    def add(self, other: DeliveryReport) -> None:
        self.accepted += other.accepted
        self.dead_lettered += other.dead_lettered
        self.dropped += other.dropped


class Delivery:
    """A sink with its retry policy, dead-letter writer and metrics.

    Transient failures are retried with exponential backoff and full jitter, honouring the
    backend's ``Retry-After``, until ``retry.max_attempts`` (unset: until accepted). Permanent
    failures are dead-lettered with the backend's reason. An unexpected exception from ``send``
    (a bug, an event the sink cannot encode) splits the batch in halves sent on their own, until
    the event causing it is alone: that event is dead-lettered with the exception as the reason,
    its neighbours are delivered. ``on_accepted`` is called after a request of which the backend
    accepted something (the driver marks its sink healthy).
    """

    def __init__(self, sink: Sink, retry: RetryConfig, dead: DeadLetterWriter, *,
                 on_accepted: Callable[[], None] | None = None) -> None:
        self.sink = sink
        self.retry = retry
        self.dead = dead
        self.on_accepted = on_accepted

    @property
    def name(self) -> str:
        return self.sink.name

    def event_size(self, event: Event) -> int:
        """The sink's size estimate of ``event``; sizing one odd event never fails its batch."""
        try:
            return self.sink.event_size(event)
        except Exception:
            return len(event.raw) + 64

    async def deliver_all(self, events: list[Event], batch: BatchConfig) -> DeliveryReport:
        """Cut ``events`` into batches within ``batch``'s limits and deliver them one after the other."""
        report = DeliveryReport()
        for part in split_batches(events, batch.max_events, batch.max_bytes, self.event_size):
            report.add(await self.deliver(part))
        return report

    async def deliver_lines(self, batches: list[LineBatch], batch: BatchConfig | None = None) -> DeliveryReport:
        """Deliver line batches (within ``batch``'s limits, if given) as :meth:`deliver` does their
        events: the first request of each is made from the columns by a sink that can
        (:attr:`~.base.Sink.accepts_lines`); whatever it does not settle goes on as events."""
        report = DeliveryReport()
        if batch is None:
            await self._deliver_lines(batches, report)
        else:
            for part in split_line_batches(batches, batch.max_events, batch.max_bytes, self._lines_size):
                await self._deliver_lines(part, report)
        return report

    def _lines_size(self, batch: LineBatch) -> int:
        try:
            return self.sink.lines_size(batch)
        except Exception:
            return len(batch.data) + 64 * len(batch)

    async def _deliver_lines(self, batches: list[LineBatch], report: DeliveryReport) -> None:
        if not self.sink.accepts_lines:
            await self._deliver(flatten(batches), False, report)
            return
        t0 = time.perf_counter()
        try:
            outcome = await self.sink.send_lines(batches)
        except Exception as exc:
            events = flatten(batches)
            outcome = error_outcome(exc, events)
            if outcome is None:  # a surprise: the event path isolates whatever caused it
                await self._deliver(events, False, report)
                return
            status = "rejected" if outcome.rejected else "error"
        else:
            if outcome is None:
                await self._deliver(flatten(batches), False, report)
                return
            status = "ok" if not (outcome.retry or outcome.rejected) else "partial"
        metrics.REQUEST_DURATION.labels(self.name, status).observe(time.perf_counter() - t0)
        retry = await self._settle(count(batches), outcome, 1, report)
        if retry:
            await self._deliver(retry, False, report, attempt=1)

    async def deliver(self, events: list[Event]) -> DeliveryReport:
        """Send until every event is accepted or dead-lettered (see the class docstring)."""
        report = DeliveryReport()
        await self._deliver(events, isolating=False, report=report)
        return report

    async def _deliver(self, events: list[Event], isolating: bool, report: DeliveryReport,
                       attempt: int = 0) -> None:
        """``attempt``: requests already made for these events."""
        pending = events
        unexpected = 0
        while pending:
            attempt += 1
            t0 = time.perf_counter()
            try:
                outcome = await self.sink.send(pending)
                status = "ok" if not (outcome.retry or outcome.rejected) else "partial"
            except Exception as exc:
                known = error_outcome(exc, pending)
                if known is not None:
                    outcome, status = known, ("rejected" if known.rejected else "error")
                else:
                    unexpected += 1
                    reason = f"unexpected {type(exc).__name__}: {exc}"
                    if not isolating:
                        log.exception("sink %s: unexpected error sending %d events", self.name, len(pending))
                    if len(pending) > 1:
                        metrics.REQUEST_DURATION.labels(self.name, "error").observe(time.perf_counter() - t0)
                        mid = len(pending) // 2
                        await self._deliver(pending[:mid], True, report)
                        await self._deliver(pending[mid:], True, report)
                        return
                    if isolating or unexpected > 1:
                        # Failed in its batch and alone, or alone twice: this event is the cause.
                        outcome = SendOutcome(rejected=[(pending[0], reason)], reason=reason)
                    else:
                        outcome = SendOutcome(retry=pending, reason=reason)
                    status = "error"
            metrics.REQUEST_DURATION.labels(self.name, status).observe(time.perf_counter() - t0)
            pending = await self._settle(len(pending), outcome, attempt, report)

    async def _settle(self, sent: int, outcome: SendOutcome, attempt: int, report: DeliveryReport) -> list[Event]:
        """Count what request ``attempt`` of ``sent`` events settled, dead-letter what was rejected,
        and return what to send again (after the backoff), if anything."""
        try:
            self._record(sent, outcome, report)
        except OSError as exc:
            # The dead-letter file could not be written: keep those events, try again later.
            log.error("sink %s: cannot write dead letters (%s); keeping them buffered", self.name, exc)
            outcome.retry.extend(e for e, _r in outcome.rejected)
            outcome.rejected = []
            outcome.reason = f"dead-letter write failed: {exc}"
        if not outcome.retry:
            return []
        if self.retry.max_attempts is not None and attempt >= self.retry.max_attempts:
            reason = f"gave up after {attempt} attempts: {outcome.reason}"
            self._count(report, self.dead_letter([(e, reason) for e in outcome.retry]), len(outcome.retry))
            return []
        delay = backoff_delay(attempt, self.retry, outcome.retry_after)
        metrics.RETRIES.labels(self.name, reason_label(outcome.reason)).inc()
        log.warning("sink %s: %d events not accepted (%s); retry %d in %.2fs", self.name,
                    len(outcome.retry), outcome.reason, attempt, delay)
        await asyncio.sleep(delay)
        return outcome.retry

    def _record(self, sent: int, outcome: SendOutcome, report: DeliveryReport) -> None:
        accepted = sent - len(outcome.retry) - len(outcome.rejected)
        if accepted > 0:
            report.accepted += accepted
            metrics.EVENTS_SENT.labels(self.name).inc(accepted)
            metrics.BATCH_EVENTS.labels(self.name).observe(sent)
            if outcome.sent_bytes:
                metrics.BYTES_SENT.labels(self.name).inc(outcome.sent_bytes)
                metrics.BATCH_BYTES.labels(self.name).observe(outcome.sent_bytes)
            metrics.LAST_SUCCESS.labels(self.name).set(time.time())
            if self.on_accepted is not None:
                self.on_accepted()
        if outcome.rejected:
            self._count(report, self.dead_letter(outcome.rejected), len(outcome.rejected))

    @staticmethod
    def _count(report: DeliveryReport, written: int, rejected: int) -> None:
        report.dead_lettered += written
        report.dropped += rejected - written

    def dead_letter(self, rejected: list[tuple[Event, str]]) -> int:
        """Write dead letters and count them; returns how many were written.

        ``OSError`` (the disk) propagates, so the caller keeps the events. An entry the writer
        cannot encode is dropped alone and counted; its neighbours are written.
        """
        if not rejected:
            return 0
        try:
            self.dead.write(rejected)
        except OSError:
            raise
        except Exception:
            rejected = self._dead_letter_each(rejected)
            if not rejected:
                return 0
        by_reason: dict[str, int] = {}
        for _e, r in rejected:
            label = reason_label(r)
            by_reason[label] = by_reason.get(label, 0) + 1
        for label, n in by_reason.items():
            metrics.EVENTS_FAILED.labels(self.name, label).inc(n)
        log.error("sink %s: %d events dead-lettered to %s (first reason: %s)", self.name, len(rejected),
                  self.dead.path, rejected[0][1])
        return len(rejected)

    def _dead_letter_each(self, rejected: list[tuple[Event, str]]) -> list[tuple[Event, str]]:
        """Write entries one by one; an entry that cannot be written is dropped and counted."""
        written = []
        for item in rejected:
            try:
                self.dead.write([item])
            except OSError:
                raise
            except Exception as exc:
                metrics.EVENTS_DROPPED.labels(f"sink:{self.name}", "dead_letter_unwritable").inc()
                log.error("sink %s: dropped an event whose dead letter cannot be written (%s: %s); "
                          "it was rejected for: %s", self.name, type(exc).__name__, exc, item[1][:200])
            else:
                written.append(item)
        return written


def reason_label(reason: str) -> str:
    """A low-cardinality label from a free-text reason (its first words)."""
    word = reason.split(":", 1)[0].strip().lower().replace(" ", "_")
    return word[:40] or "unknown"
