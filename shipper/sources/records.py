"""Turning a payload into a record: JSON detection and event-time extraction, shared by sources."""

from __future__ import annotations

import math
import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from shipper.event import record_from_payload

__all__ = ["parse_rfc3339_ns", "record_from_payload", "record_time_ns"]

_TS_KEYS = ("timestamp", "@timestamp", "time", "ts")


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d)(?:\.(\d{1,9})\d*)?([Zz]|[+-]\d\d:?\d\d)?$")


_SECONDS: dict[str, int | None] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch seconds (None: not a time)
_MAX_SECONDS = 16384
_UNSEEN: Any = object()


def parse_rfc3339_ns(value: str) -> int | None:
    """Parse an RFC 3339 timestamp (``Z`` or offset, any fraction) to ns since the epoch.

    The common shape (``...:SS.fffZ``, 1 to 9 fraction digits) is read from a cache of its whole
    second: each line of a busy log has its own millisecond, so whole values rarely repeat.
    """
    n = len(value)
    if 20 < n < 31 and value[19] == "." and value[-1] == "Z" and value[20:-1].isdecimal():
        prefix = value[:19]
        secs = _SECONDS.get(prefix, _UNSEEN)
        if secs is _UNSEEN:
            if len(_SECONDS) >= _MAX_SECONDS:
                _SECONDS.clear()
            whole = _parse_rfc3339_ns(prefix + "Z")
            secs = _SECONDS[prefix] = None if whole is None else whole // 1_000_000_000
        if secs is not None:
            ns: int = secs * 1_000_000_000 + int(value[20:-1].ljust(9, "0"))
            return ns
    return _parse_rfc3339_ns(value)


@lru_cache(maxsize=16384)
def _parse_rfc3339_ns(value: str) -> int | None:
    m = _RFC3339.match(value.strip())
    if m is None:
        return None
    base, frac, tz = m.groups()
    secs = _whole_seconds(base.replace(" ", "T").replace("t", "T"), tz or "")
    if secs is None:
        return None
    return secs * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)


@lru_cache(maxsize=4096)
def _whole_seconds(base: str, tz: str) -> int | None:
    """Epoch seconds of ``YYYY-MM-DDTHH:MM:SS`` plus a zone; cached, as log lines share seconds."""
    if tz in ("Z", "z", ""):
        tz = "+00:00"
    elif len(tz) == 5:
        tz = tz[:3] + ":" + tz[3:]
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
            # A value out of the int64 ns range is kept here; the Event replaces it and counts it.
            x = abs(v)
            if x != x or x == math.inf:  # NaN or infinity (possible from msgpack): no time at all
                continue
            if x < 1e11:
                return int(v * 1_000_000_000)
            if x < 1e14:
                return int(v * 1_000_000)
            if x < 1e17:
                return int(v * 1_000)
            return int(v)
    return None
