"""CloudWatch Logs sink: partition by (group, stream), cut into legal PutLogEvents calls, read answers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import ProfileNotFound

from shipper import metrics
from shipper.event import Event
from shipper.sinks._common.base import Sink
from shipper.sinks._common.outcome import PermanentSinkError, SendOutcome, TransientSinkError
from shipper.sinks.cloudwatch.config import CloudWatchSinkConfig
from shipper.sinks.cloudwatch.limits import (
    EVENT_OVERHEAD_BYTES,
    LogEvent,
    clean_group_name,
    clean_stream_name,
    rejected_by_info,
    split_for_put,
    time_window_reason,
    to_log_event,
)
from shipper.sinks.cloudwatch.service import (
    ErrorKind,
    ErrorVerdict,
    LogsService,
    build_client,
    classify_error,
)
from shipper.templates import render

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

log = logging.getLogger("shipper.sinks.cloudwatch")

Destination = tuple[str, str]
_Call = tuple[Destination, list[LogEvent]]
_EMPTY_REASON = "empty_message: CloudWatch Logs does not store empty messages"


class CloudWatchSink(Sink):
    """Ships each event's raw line to the log group and stream its templates name.

    One ``send`` may make several PutLogEvents calls (one per stream and limit-sized chunk), in turn;
    a call that fails leaves the calls already accepted alone, so only its events and those not yet
    sent are retried.
    """

    config: CloudWatchSinkConfig

    def __init__(
        self,
        name: str,
        config: CloudWatchSinkConfig,
        data_dir: str,
        *,
        client: CloudWatchLogsClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, config, data_dir)
        self._client = client
        self._own_client = client is None
        self._clock = clock
        self._service: LogsService | None = None
        # Events cut to the size limit so far (a Prometheus counter would be the place for this).
        self.truncated_events = 0

    async def start(self) -> None:
        if self._client is None:
            try:
                self._client = await asyncio.to_thread(build_client, self.config)
            except ProfileNotFound as exc:
                raise PermanentSinkError(self.name, f"AWS profile {self.config.profile!r} not found") from exc
        self._service = LogsService(self._client, retention_days=self.config.retention_days)

    async def _logs(self) -> LogsService:
        if self._service is None:
            await self.start()
        assert self._service is not None
        return self._service

    def event_size(self, event: Event) -> int:
        return len(event.raw.encode("utf-8", "surrogatepass")) + EVENT_OVERHEAD_BYTES

    def destination(self, event: Event) -> Destination:
        """The (log group, log stream) the templates name for ``event``, made valid for AWS."""
        missing = self.config.missing_value
        group = clean_group_name(render(self.config.group, event, missing), missing)
        stream = clean_stream_name(render(self.config.stream, event, missing), missing)
        return group, stream

    async def send(self, events: list[Event]) -> SendOutcome:
        service = await self._logs()
        outcome = SendOutcome()
        calls = self._plan(events, int(self._clock() * 1000), outcome)
        for i, (dest, call) in enumerate(calls):
            try:
                verdict = await self._put(service, dest, call, outcome)
            except Exception as exc:
                if i == 0:
                    raise
                # A bug rather than AWS: keep what earlier calls stored; the rest comes back as a
                # send of its own, where the driver's bounded handling of surprises takes over.
                log.exception("sink %s: unexpected error in PutLogEvents", self.name)
                verdict = ErrorVerdict(ErrorKind.RETRY, f"unexpected {type(exc).__name__}: {exc}")
            if verdict is None or verdict.kind is ErrorKind.REJECT:
                continue
            # RETRY or DENIED: the calls not made yet share this call's fate.
            rest = [e.event for _dest, c in calls[i:] for e in c]
            everything = i == 0 and not outcome.rejected
            if verdict.kind is ErrorKind.DENIED:
                if everything:
                    raise PermanentSinkError(self.name, verdict.reason)
                outcome.rejected.extend((e, verdict.reason) for e in rest)
            else:
                if everything:
                    raise TransientSinkError(self.name, verdict.reason, verdict.retry_after)
                outcome.retry.extend(rest)
                outcome.retry_after = verdict.retry_after
            outcome.reason = verdict.reason
            break
        return outcome

    def _plan(self, events: list[Event], now_ms: int, outcome: SendOutcome) -> list[_Call]:
        """Partition by destination and cut into calls; what AWS would refuse goes to ``rejected``."""
        partitions: dict[Destination, list[LogEvent]] = {}
        truncated = 0
        for event in events:
            if not event.raw:
                outcome.rejected.append((event, _EMPTY_REASON))
                continue
            le = to_log_event(event, self.config.max_event_bytes)
            reason = time_window_reason(le.timestamp, now_ms)
            if reason:
                outcome.rejected.append((event, reason))
                continue
            if le.truncated:
                event.meta["truncated"] = True
                truncated += 1
            partitions.setdefault(self.destination(event), []).append(le)
        if truncated:
            self.truncated_events += truncated
            metrics.EVENTS_TRUNCATED.labels(self.name).inc(truncated)
            log.warning("sink %s: %d event(s) over %d bytes truncated", self.name, truncated,
                        self.config.max_event_bytes)
        return [(dest, call) for dest, evs in partitions.items() for call in split_for_put(evs)]

    async def _put(
        self, service: LogsService, dest: Destination, call: list[LogEvent], outcome: SendOutcome
    ) -> ErrorVerdict | None:
        """One call, creating a missing stream and trying once more; None when it was accepted.

        Events refused for good are added to ``outcome.rejected`` here; the caller decides what a
        RETRY or DENIED verdict means for the calls after this one.
        """
        group, stream = dest
        verdict = await self._attempt(service, dest, call, outcome)
        if verdict is not None and verdict.kind is ErrorKind.MISSING:
            if not self.config.create_missing:
                verdict = ErrorVerdict(ErrorKind.REJECT, f"{verdict.reason} (create_missing is off)")
            else:
                try:
                    await service.create_stream(group, stream)
                except Exception as exc:
                    verdict = _verdict(exc)
                else:
                    verdict = await self._attempt(service, dest, call, outcome)
                if verdict is not None and verdict.kind is ErrorKind.MISSING:
                    verdict = ErrorVerdict(ErrorKind.RETRY, f"{verdict.reason} (just after creating it)")
        if verdict is not None and verdict.kind is ErrorKind.REJECT:
            outcome.rejected.extend((e.event, f"{verdict.reason} ({group} / {stream})") for e in call)
            outcome.reason = verdict.reason
        return verdict

    async def _attempt(
        self, service: LogsService, dest: Destination, call: list[LogEvent], outcome: SendOutcome
    ) -> ErrorVerdict | None:
        """PutLogEvents once; on success the events AWS refused go to ``outcome.rejected``."""
        try:
            info = await service.put(*dest, call)
        except Exception as exc:
            verdict = _verdict(exc)
            if verdict.kind is not ErrorKind.ACCEPTED:
                return verdict
            info = {}
        refused = rejected_by_info(call, info)
        outcome.rejected.extend((e.event, reason) for e, reason in refused)
        outcome.sent_bytes += sum(e.size for e in call) - sum(e.size for e, _ in refused)
        return None

    async def healthcheck(self) -> None:
        service = await self._logs()
        prefix = self.config.group.split("{{", 1)[0]
        try:
            await service.describe_groups(prefix)
        except Exception as exc:
            verdict = classify_error(exc)
            if verdict is None:
                raise
            where = (f"CloudWatch Logs at {service.client.meta.endpoint_url} "
                     f"(region {self.config.region}, profile {self.config.profile or 'default chain'})")
            message = f"DescribeLogGroups on {where} failed: {verdict.reason}"
            if verdict.kind is ErrorKind.DENIED:
                raise PermanentSinkError(self.name, message) from exc
            raise TransientSinkError(self.name, message, verdict.retry_after) from exc

    async def close(self) -> None:
        if self._client is not None and self._own_client:
            self._client.close()
        self._service = None


def _verdict(exc: Exception) -> ErrorVerdict:
    """The verdict on an AWS error; anything else is a bug and propagates (the driver bounds it)."""
    verdict = classify_error(exc)
    if verdict is None:
        raise exc
    return verdict
