"""What CloudWatch Logs enforces on PutLogEvents, as pure functions (moto enforces none of it).

Source: the PutLogEvents API reference
(https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html, the same
text is in the botocore 1.44 service model): a batch is at most 1,048,576 bytes counted as the UTF-8
messages plus 26 bytes per event, at most 10,000 events, in chronological order, spanning at most
24 hours; each event can be no larger than 1 MB (raised from 256 KB in 2025); events more than 14 days
old or more than 2 hours ahead are rejected while the rest of the batch is stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shipper.event import Event

MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
MAX_BATCH_EVENTS = 10_000
MAX_SPAN_MS = 24 * 3600 * 1000
MAX_AGE_MS = 14 * 24 * 3600 * 1000
MAX_AHEAD_MS = 2 * 3600 * 1000
# "Each log event can be no larger than 1 MB" (the 26 bytes included, as they were for 256 KB).
MAX_EVENT_BYTES = 1_048_576
TRUNCATION_MARKER = "…[truncated]"

RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)
MAX_NAME_LENGTH = 512
INVALID_GROUP_CHARS = re.compile(r"[^.\-_/#A-Za-z0-9]")
INVALID_STREAM_CHARS = re.compile(r"[:*]")
RESERVED_GROUP_PREFIX = "aws/"


@dataclass(slots=True)
class LogEvent:
    """One event as PutLogEvents takes it, with its size as AWS counts it."""

    event: Event
    timestamp: int
    message: str
    size: int
    truncated: bool = False

    def to_api(self) -> dict[str, Any]:
        return {"timestamp": self.timestamp, "message": self.message}


def truncate_utf8(message: str, max_bytes: int) -> tuple[str, bytes, bool]:
    """``message`` cut to ``max_bytes`` UTF-8 bytes, ending in the truncation marker if it was cut.

    Returns the text, its UTF-8 encoding and whether it was cut. Lone surrogates (undecodable input
    kept by a source) become U+FFFD and split pairs are joined, since AWS only takes valid UTF-8.
    """
    try:
        data = message.encode("utf-8")
    except UnicodeEncodeError:
        message = message.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        data = message.encode("utf-8")
    if len(data) <= max_bytes:
        return message, data, False
    marker = TRUNCATION_MARKER.encode("utf-8")
    # "ignore" drops a multi-byte character the cut went through.
    kept = data[: max(0, max_bytes - len(marker))].decode("utf-8", "ignore")
    text = kept + TRUNCATION_MARKER
    return text, text.encode("utf-8"), True


def to_log_event(event: Event, max_event_bytes: int = MAX_EVENT_BYTES) -> LogEvent:
    """The raw line as the message, its time in milliseconds, truncated to the event size limit."""
    text, data, truncated = truncate_utf8(event.raw, max_event_bytes - EVENT_OVERHEAD_BYTES)
    return LogEvent(event, event.ts_ns // 1_000_000, text, len(data) + EVENT_OVERHEAD_BYTES, truncated)


def time_window_reason(timestamp_ms: int, now_ms: int) -> str | None:
    """Why AWS would reject an event at ``timestamp_ms`` (too old or too new), or None."""
    if timestamp_ms < now_ms - MAX_AGE_MS:
        return f"too_old: timestamp {timestamp_ms} ms is more than 14 days in the past"
    if timestamp_ms > now_ms + MAX_AHEAD_MS:
        return f"too_new: timestamp {timestamp_ms} ms is more than 2 hours in the future"
    return None


def split_for_put(events: list[LogEvent]) -> list[list[LogEvent]]:
    """Sort by time and cut into PutLogEvents calls within the byte, count and 24 h span limits."""
    calls: list[list[LogEvent]] = []
    current: list[LogEvent] = []
    nbytes = 0
    for e in sorted(events, key=lambda e: e.timestamp):
        if current and (
            len(current) >= MAX_BATCH_EVENTS
            or nbytes + e.size > MAX_BATCH_BYTES
            or e.timestamp - current[0].timestamp >= MAX_SPAN_MS
        ):
            calls.append(current)
            current, nbytes = [], 0
        current.append(e)
        nbytes += e.size
    if current:
        calls.append(current)
    return calls


def rejected_by_info(call: list[LogEvent], info: dict[str, int] | None) -> list[tuple[LogEvent, str]]:
    """Map ``rejectedLogEventsInfo`` of one call back to its events.

    Indices refer to the call's events in the order sent: ``tooNewLogEventStartIndex`` is inclusive
    (it and every later event), ``tooOldLogEventEndIndex`` and ``expiredLogEventEndIndex`` are
    exclusive (every event before it), as the API reference documents.
    """
    if not info:
        return []
    n = len(call)
    reasons: dict[int, str] = {}
    start = info.get("tooNewLogEventStartIndex")
    if start is not None:
        for i in range(max(0, start), n):
            reasons.setdefault(i, "too_new: CloudWatch Logs rejected the event as more than 2 hours ahead")
    end = info.get("tooOldLogEventEndIndex")
    if end is not None:
        for i in range(min(end, n)):
            reasons.setdefault(i, "too_old: CloudWatch Logs rejected the event as more than 14 days old")
    end = info.get("expiredLogEventEndIndex")
    if end is not None:
        for i in range(min(end, n)):
            reasons.setdefault(i, "expired: the event is older than the log group's retention period")
    return [(call[i], reasons[i]) for i in sorted(reasons)]


def clean_group_name(name: str, fallback: str) -> str:
    """A valid log group name: characters AWS refuses become ``_``, not ``aws/…``, cut to 512 characters.

    CreateLogGroup: 1-512 characters of ``a-z A-Z 0-9 _ - / . #``, and no name starts with ``aws/``.
    """
    name = INVALID_GROUP_CHARS.sub("_", name or fallback)[:MAX_NAME_LENGTH]
    return "aws_" + name[4:] if name[:4].lower() == RESERVED_GROUP_PREFIX else name


def clean_stream_name(name: str, fallback: str) -> str:
    """A valid log stream name: ``:`` and ``*`` become ``_``, valid UTF-8, cut to 512 characters."""
    name = name or fallback
    if not name.isascii():
        name = name.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate cannot be sent
    return INVALID_STREAM_CHARS.sub("_", name)[:MAX_NAME_LENGTH]
