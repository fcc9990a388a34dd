"""Turning a payload into a record: JSON detection and event-time extraction, shared by sources."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

_TS_KEYS = ("timestamp", "@timestamp", "time", "ts")


def record_from_payload(payload: str) -> dict[str, Any]:
    """A JSON object payload becomes its fields; anything else becomes ``{"message": payload}``."""
    if payload[:1] == "{":
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return {"message": payload}
        if isinstance(obj, dict):
            return obj
    return {"message": payload}


def parse_rfc3339_ns(value: str) -> int | None:
    """Parse an RFC 3339 timestamp (``Z`` or offset, any fraction) to ns since the epoch."""
    s = value.strip()
    if len(s) < 19:
        return None
    frac_ns = 0
    tail = s[19:]
    if tail.startswith("."):
        digits = ""
        i = 1
        while i < len(tail) and tail[i].isdigit():
            digits += tail[i]
            i += 1
        frac_ns = int((digits + "000000000")[:9]) if digits else 0
        tail = tail[i:]
    secs = _whole_seconds(s[:19], tail)
    return None if secs is None else secs * 1_000_000_000 + frac_ns


@lru_cache(maxsize=4096)
def _whole_seconds(base: str, tz: str) -> int | None:
    """Epoch seconds of ``YYYY-MM-DDTHH:MM:SS`` plus a zone; cached, as log lines share seconds."""
    if tz in ("Z", "z", ""):
        tz = "+00:00"
    try:
        dt = datetime.fromisoformat(base + tz)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return int(dt.timestamp())


def record_time_ns(record: dict[str, Any]) -> int | None:
    """The event time a record carries in ``timestamp`` (or ``@timestamp``/``time``/``ts``), if any."""
    for key in _TS_KEYS:
        v = record.get(key)
        if v is None:
            continue
        if isinstance(v, str):
            ns = parse_rfc3339_ns(v)
            if ns is not None:
                return ns
        elif isinstance(v, int | float) and not isinstance(v, bool):
            # Seconds, milliseconds, micro- or nanoseconds since the epoch, told apart by magnitude.
            x = abs(v)
            if x < 1e11:
                return int(v * 1_000_000_000)
            if x < 1e14:
                return int(v * 1_000_000)
            if x < 1e17:
                return int(v * 1_000)
            return int(v)
    return None
