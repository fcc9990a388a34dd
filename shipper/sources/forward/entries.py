"""Forward entries (``[time, record]``) turned into events: times, text repair, JSON payloads."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

import msgpack
import orjson

from shipper.event import Event
from shipper.sources.forward.errors import BAD_ENTRY, BAD_RECORD, BAD_TIME
from shipper.sources.records import record_from_payload, record_time_ns

# Nesting deeper than this in a record that needs cleaning skips the entry (keeps recursion bounded).
_MAX_DEPTH = 100
_PAYLOAD_KEYS = ("log", "message")
_EVENT_TIME = struct.Struct(">II")


def entry_time_ns(t: Any, now_ns: Callable[[], int]) -> int | None:
    """Nanoseconds of an entry's time (int seconds, EventTime, float), or None when invalid."""
    kind = type(t)
    if kind is int:
        return t * 1_000_000_000 if t else now_ns()
    if kind is msgpack.ExtType:
        return _event_time_ns(t)
    if t is None:
        return now_ns()
    if kind is float:
        if not math.isfinite(t):
            return None
        seconds = int(t)  # split first: t * 1e9 as a float loses the sub-microsecond digits
        ns: int = seconds * 1_000_000_000 + round((t - seconds) * 1_000_000_000)
        return ns
    if kind is msgpack.Timestamp:
        return int(t.to_unix_nano())
    if kind is list and len(t) == 2 and type(t[0]) is not list:
        # Fluent Bit event format v2: [[time, metadata], record].
        return entry_time_ns(t[0], now_ns)
    return None


def _event_time_ns(ext: msgpack.ExtType) -> int | None:
    """Fluentd's EventTime: ext type 0, big-endian uint32 seconds and uint32 nanoseconds."""
    if ext.code != 0 or len(ext.data) != 8:
        return None
    seconds, nanos = _EVENT_TIME.unpack(ext.data)
    return seconds * 1_000_000_000 + nanos if nanos < 1_000_000_000 else None


def build_events(
    entries: Any, tag: str, source: str, now_ns: Callable[[], int]
) -> tuple[list[Event], list[str]]:
    """Events for the good entries, and the reason each bad one was skipped.

    The record becomes JSON-clean (text keys, U+FFFD for invalid UTF-8, text for bytes); a JSON
    object held in ``log`` or ``message`` is parsed and merged, and is then the event's ``raw``.
    """
    events: list[Event] = []
    skipped: list[str] = []
    append = events.append
    dumps = orjson.dumps
    for entry in entries:
        if (type(entry) is not list and type(entry) is not tuple) or len(entry) != 2:
            skipped.append(BAD_ENTRY)
            continue
        t, record = entry
        if type(record) is not dict:
            skipped.append(BAD_RECORD)
            continue
        ts = entry_time_ns(t, now_ns)
        if ts is None:
            skipped.append(BAD_TIME)
            continue
        try:
            raw_bytes = dumps(record)
        except orjson.JSONEncodeError:
            # bytes, ext types, non-string keys, invalid UTF-8: repair, then encode again.
            try:
                record = _clean_map(record, 0)
                raw_bytes = dumps(record)
            except (_TooDeep, orjson.JSONEncodeError):
                skipped.append(BAD_RECORD)
                continue
        raw = None
        for key in _PAYLOAD_KEYS:
            payload = record.get(key)
            if type(payload) is str and payload[:1] == "{":
                parsed = record_from_payload(payload)
                if parsed.get("message") is not payload:  # a JSON object, not the text fallback
                    merged = {k: v for k, v in record.items() if k != key}
                    merged.update(parsed)
                    record, raw = merged, payload
                    break
        if raw is None:
            raw = raw_bytes.decode()
        record_ts = record_time_ns(record)
        append(Event(record, raw, ts if record_ts is None else record_ts, {"source": source, "tag": tag}))
    return events, skipped


class _TooDeep(Exception):
    pass


def repair_str(s: str) -> str:
    """Turn bytes that were not valid UTF-8 (kept as surrogate escapes) into U+FFFD."""
    try:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace").decode("utf-8")


def _clean_map(m: dict[Any, Any], depth: int) -> dict[str, Any]:
    if depth >= _MAX_DEPTH:
        raise _TooDeep
    return {_clean_key(k): _clean(v, depth + 1) for k, v in m.items()}


def _clean_key(k: Any) -> str:
    kind = type(k)
    if kind is str:
        return repair_str(k)
    if kind is bytes:
        text: str = k.decode("utf-8", "replace")
        return text
    return str(_clean(k, _MAX_DEPTH - 1))


def _clean(v: Any, depth: int) -> Any:
    """A JSON-friendly copy of an unpacked value: str keys, text for bytes, ints for times."""
    kind = type(v)
    if kind is str:
        return repair_str(v)
    if kind is bytes:
        return v.decode("utf-8", "replace")
    if kind is dict:
        return _clean_map(v, depth)
    if kind is list or kind is tuple:
        if depth >= _MAX_DEPTH:
            raise _TooDeep
        return [_clean(x, depth + 1) for x in v]
    if kind is msgpack.ExtType:
        ns = _event_time_ns(v)
        return f"ext({v.code}):{v.data.hex()}" if ns is None else ns
    if kind is msgpack.Timestamp:
        return int(v.to_unix_nano())
    return v
