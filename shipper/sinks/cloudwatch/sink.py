"""CloudWatch Logs sink: partition by (group, stream), cut into legal PutLogEvents calls, read answers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

from botocore.exceptions import ProfileNotFound

from shipper import metrics
from shipper.event import Event
from shipper.sinks._common.base import Sink
from shipper.sinks._common.calls import send_in_turn
from shipper.sinks._common.outcome import PermanentSinkError, SendOutcome, TransientSinkError
from shipper.sinks.cloudwatch.config import DEFAULT_GROUPS_PER_POD, DEFAULT_STREAMS_PER_POD, CloudWatchSinkConfig
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
from shipper.templates import NameGuard, compile_template, is_template, pod_budget, render, tenant_of

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

log = logging.getLogger("shipper.sinks.cloudwatch")

Destination = tuple[str, str]
_Call = tuple[Destination, list[LogEvent]]
# Past this many distinct inputs the decision cache is rebuilt: refused inputs share one destination.
_MAX_CACHED_KEYS = 100_000
_EMPTY_REASON = "empty_message: CloudWatch Logs does not store empty messages"


class CloudWatchSink(Sink[CloudWatchSinkConfig]):
    """Ships each event's raw line to the log group and stream its templates name.

    One ``send`` may make several PutLogEvents calls (one per stream and limit-sized chunk), in turn;
    a call that fails leaves the calls already accepted alone, so only its events and those not yet
    sent are retried.
    """

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
        self.names = DestinationBudget(config, name)
        # Events cut to the size limit since start (also ecvi_shipper_events_truncated_total).
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
        """The (log group, log stream) the templates name for ``event``, made valid for AWS and bounded."""
        missing = self.config.missing_value
        group = clean_group_name(render(self.config.group, event, missing), missing)
        stream = clean_stream_name(render(self.config.stream, event, missing), missing)
        return self.names.bound(group, stream, tenant_of(event.meta))

    async def send(self, events: list[Event]) -> SendOutcome:
        service = await self._logs()
        outcome = SendOutcome()
        calls = self._plan(events, int(self._clock() * 1000), outcome)

        async def put(call: _Call) -> SendOutcome:
            return await self._put_call(service, call)

        return await send_in_turn(calls, put, _call_events, sink=self.name, outcome=outcome)

    async def _put_call(self, service: LogsService, call: _Call) -> SendOutcome:
        """One call's outcome; RETRY and DENIED raise, as they concern the calls after it too."""
        out = SendOutcome()
        verdict = await self._put(service, *call, out)
        if verdict is None or verdict.kind is ErrorKind.REJECT:
            return out
        if verdict.kind is ErrorKind.DENIED:
            raise PermanentSinkError(self.name, verdict.reason)
        raise TransientSinkError(self.name, verdict.reason, verdict.retry_after)

    def _plan(self, events: list[Event], now_ms: int, outcome: SendOutcome) -> list[_Call]:
        """Partition by destination and cut into calls; what AWS would refuse goes to ``rejected``."""
        partitions: dict[Destination, list[LogEvent]] = {}
        truncated = 0
        self.names.refresh()
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

        Events refused for good are added to ``outcome.rejected`` here; a RETRY or DENIED verdict
        is for the caller to act on.
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


class DestinationBudget:
    """How many log groups and streams the templates may create per hour; the rest overflow.

    Every group and stream is a resource in the account (and a DescribeLogStreams page), so a line
    that names its own must not create them without bound: at most ``max_groups`` groups and
    ``max_streams`` (group, stream) pairs per hour, of which one pod brings at most its own share
    (:class:`~shipper.templates.NameGuard`). A refused group becomes the overflow group, a refused
    stream the overflow stream of its group (templates with every field ``__overflow__``); each
    such event is counted in ``ecvi_shipper_index_overflow_total``.
    """

    def __init__(self, config: CloudWatchSinkConfig, sink: str) -> None:
        self.sink = sink
        missing = config.missing_value
        grouped = is_template(config.group)
        groups_per_pod = pod_budget(config.max_groups, config.max_groups_per_pod, DEFAULT_GROUPS_PER_POD)
        streams_per_pod = pod_budget(config.max_streams, config.max_streams_per_pod, DEFAULT_STREAMS_PER_POD)
        self.groups = NameGuard(config.max_groups, groups_per_pod) if grouped else None
        self.streams = (NameGuard(config.max_streams, streams_per_pod)
                        if grouped or is_template(config.stream) else None)
        self.overflow_group = clean_group_name(_overflow_text(config.group), missing)
        self.overflow_stream = clean_stream_name(_overflow_text(config.stream), missing)
        self._stream_templated = is_template(config.stream)
        self._decided: dict[tuple[Hashable | None, str, str], tuple[Destination, bool]] = {}
        self.overflowed = 0
        """Events sent to an overflow group or stream since start."""

    def refresh(self) -> None:
        """Open a new window when the hour is over; called once per batch."""
        for guard in (self.groups, self.streams):
            if guard is not None and guard.expired():
                guard.reset()
                self._decided.clear()

    def bound(self, group: str, stream: str, tenant: Hashable | None) -> Destination:
        """``(group, stream)`` if they may exist this hour, else where the overflow goes."""
        if self.streams is None:
            return group, stream
        key = (tenant, group, stream)
        hit = self._decided.get(key)
        if hit is None:
            if len(self._decided) >= _MAX_CACHED_KEYS:
                self._decided.clear()
            hit = self._decided[key] = self._decide(group, stream, tenant)
        dest, overflowed = hit
        if overflowed:
            self.overflowed += 1
            metrics.INDEX_OVERFLOW.labels(self.sink).inc()
        return dest

    def _decide(self, group: str, stream: str, tenant: Hashable | None) -> tuple[Destination, bool]:
        assert self.streams is not None
        overflowed = False
        if self.groups is not None:
            why = self.groups.admit(group, tenant)
            if why is not None:
                self._warn(self.groups, "log group", group, why, self.overflow_group)
                group, overflowed = self.overflow_group, True
        why = self.streams.admit((group, stream), tenant)
        if why is not None:
            if self._stream_templated:
                self._warn(self.streams, "log stream", f"{group} / {stream}", why, self.overflow_stream)
                stream = self.overflow_stream
            else:  # one fixed stream per group: the groups are what multiplies
                self._warn(self.streams, "log group", group, why, self.overflow_group)
                group = self.overflow_group
            overflowed = True
        return (group, stream), overflowed

    def _warn(self, guard: NameGuard, what: str, name: str, why: str, overflow: str) -> None:
        if guard.first_refusal():
            log.warning("sink %s: %s %r not created: %s; such events go to %r this hour",
                        self.sink, what, name, why, overflow)


def _call_events(call: _Call) -> list[Event]:
    return [e.event for e in call[1]]


def _overflow_text(template: str) -> str:
    literals, fields = compile_template(template)
    return "__overflow__".join(literals) if fields else template


def _verdict(exc: Exception) -> ErrorVerdict:
    """The verdict on an AWS error; anything else is a bug and propagates (the delivery bounds it)."""
    verdict = classify_error(exc)
    if verdict is None:
        raise exc
    return verdict
