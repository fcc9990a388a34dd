"""Factories for what tests build again and again: events, Fluent forward times, container log lines.

Each returns a fresh object (metadata is copied), so a test may change what it gets without
touching another test's data.
"""

from __future__ import annotations

import copy
import struct
import time
from collections.abc import Mapping
from typing import Any

import msgpack
import orjson

from shipper.event import Event

CRI_TIME = "2025-01-01T00:00:00.123456789Z"
"""A CRI log time (RFC 3339, nanoseconds, UTC) for lines whose time does not matter."""

DOCKER_TIME = "2025-01-01T00:00:01Z"
"""A docker ``json-file`` log time for lines whose time does not matter."""


def event(
    record: Mapping[str, Any] | None = None,
    *,
    raw: str | None = None,
    ts_ns: int = 0,
    meta: Mapping[str, Any] | None = None,
    derived: bool = False,
    **fields: Any,
) -> Event:
    """An event holding ``record`` plus ``fields``, its raw line their JSON unless ``raw`` is given.

    With ``raw`` and no record or fields, the record is left to be parsed from ``raw`` on demand,
    as the sources make events from a line.
    """
    m = copy.deepcopy(dict(meta)) if meta is not None else {}
    if raw is not None and record is None and not fields:
        return Event(None, raw, ts_ns, m)
    rec = {**(record or {}), **fields}
    return Event(rec, orjson.dumps(rec).decode() if raw is None else raw, ts_ns, m, derived)


def numbered_event(
    n: int,
    *,
    raw: str | None = None,
    ts_ns: int | None = None,
    meta: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Event:
    """Event number ``n``: record ``{"n": n}`` plus ``fields``, line ``line {n}`` and time ``n`` ns unless given."""
    return event({"n": n}, raw=f"line {n}" if raw is None else raw, ts_ns=n if ts_ns is None else ts_ns,
                 meta=meta, **fields)


def iso_ms(ts_ns: int) -> str:
    """``ts_ns`` as ``logging_config`` writes a ``timestamp`` (UTC, milliseconds, ``Z``)."""
    secs, ns = divmod(ts_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ns // 1_000_000:03d}Z"


def cri_time(ts_ns: int | None = None) -> str:
    """``ts_ns`` (now by default) as a CRI log time (UTC, nanoseconds, ``Z``)."""
    ts_ns = time.time_ns() if ts_ns is None else ts_ns
    secs, ns = divmod(ts_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ns:09d}Z"


def cri_line(message: str, tag: str = "F", stream: str = "stdout", time: str = CRI_TIME) -> str:
    """One line as the kubelet writes it (CRI format): ``tag`` ``P`` for a partial line, ``F`` for its end."""
    return f"{time} {stream} {tag} {message}\n"


def docker_line(log: str, stream: str = "stdout", time: str = DOCKER_TIME) -> str:
    """One line as docker's ``json-file`` driver writes it; ``log`` keeps its own newline, if any."""
    return orjson.dumps({"log": log, "stream": stream, "time": time}).decode() + "\n"


def event_time(seconds: int, nanos: int = 0) -> msgpack.ExtType:
    """A Fluent forward EventTime (msgpack ext type 0: seconds and nanoseconds, big-endian)."""
    return msgpack.ExtType(0, struct.pack(">II", seconds, nanos))
