"""Hostile log lines, each carrying a marker, for the hostile-pipeline property test and the poison run.

Every line, good or bad, holds ``hpm-<n>-`` near its start (ASCII, before anything that may be cut
or replaced), so whatever form a line is delivered or dead-lettered in, :func:`marker_of` finds
which generated line it was. A line is a CRI time plus a payload of bytes (the payload may be
invalid UTF-8); :func:`cri_line` wraps it as the kubelet writes it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.factories import cri_time as cri_time  # re-exported for the users of these lines
from tests.factories import iso_ms as iso_ms

MARKER = re.compile(rb"hpm-(\d+)-")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Timestamps a pod may write: out of every backend's range, at its edges, or not times at all.
TIME_VALUES = (
    "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1e300", "-1e300", "1e19", "-1e19",
    "9223372036854775807", "9223372036854775808", "-9223372036854775809", "18446744073709551616",
    "123456789012345678901234567890", "0", "-1", "253402300799", "253402300800000", "-62135596800",
    "-62135596800000", "-9999999999", "1.5e10", "4102444800000000000", "99999999999999999999",
    "true", "null", "[]", "{}",
    '"0000-01-01T00:00:00Z"', '"0001-01-01T00:00:00.000Z"', '"9999-12-31T23:59:59.999999999Z"',
    '"1600-02-29T12:00:00Z"', '"1677-09-21T00:12:43.145224191Z"', '"2262-04-11T23:47:16.854775808Z"',
    '"10000-01-01T00:00:00Z"', '"2025-13-45T99:99:99Z"', '"not a time"', '""', '"inf"', '"NaN"',
    '"1700000000"', '"2025-01-01T00:00:00+99:99"', '"2025-01-01T00:00:00.1234567890123Z"',
)
# CRI times as a hostile file could hold them (the parser only checks their shape).
CRI_TIMES = (
    "0001-01-01T00:00:00.000000000Z", "9999-12-31T23:59:59.999999999Z", "1677-09-21T00:12:43.145224191Z",
    "2262-04-11T23:47:16.854775808Z", "0000-00-00T00:00:00.000000000Z", "1969-12-31T23:59:59.999999999Z",
)
TIME_KEYS = ("timestamp", "@timestamp", "time", "ts")
DEEP_KEYS = ("d", "request_id", "service", "level", "message", "kubernetes", "timestamp")
BAD_UTF8 = (b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf0\x28\x8c\xbc", b"\xe2\x82", b"\xc0\xaf",
            b"\x80", b"\xf8\x88\x80\x80\x80")
CONTROLS = ("\x00", "\x01", "\x07", "\x1b[31m", "\x7f", "\u2028", "\u2029", "\r", "\t", "\x0b", "\x0c",
            "\ufeff", "\u202e", "\x85", "\ud800")
COLLIDING = ("kubernetes", "@timestamp", "_id", "ts_ns", "_index", "_source", "_routing", "meta", "record",
             "id", "offset", "file", "source", "stream", "truncated", "line", "__overflow__")
FORGED_K8S = {"namespace": "payments", "pod_name": "payments-api-5f7d9", "container_name": "api",
              "container_id": "0" * 64}
COLLIDING_VALUES: tuple[Any, ...] = (
    FORGED_K8S, "payments", 12345, -1, [1, 2, 3], None, True, {"namespace": {"nested": ["x"]}},
    {"namespace": "payments", "pod_name": "payments-api-5f7d9", "extra": "x" * 300}, "2025-01-01T00:00:00Z", 1e300,
)
ODD_KEYS = ("", ".", "a.b.c", "\x00", "k\u2028", "😀", "$where", "__proto__", "{{ service }}", "a" * 2000,
            "KUBERNETES", "service.name", "level\n")
ODD_VALUES: tuple[Any, ...] = (
    2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**40, 1.7976931348623157e308, -0.0, 5e-324, None,
    True, [], {}, "", "x" * 5000, list(range(300)), {"k" * 100: "v" * 100},
)


def marker(n: int) -> str:
    return f"hpm-{n}-"


def marker_of(data: bytes | str) -> int | None:
    """The number of the generated line ``data`` came from (its first marker), if any."""
    m = MARKER.search(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    return int(m.group(1)) if m else None


def cri_line(cri_ts: str, payload: bytes) -> bytes:
    """A CRI line of raw bytes (the payload may be invalid UTF-8, unlike :func:`tests.factories.cri_line`'s)."""
    return cri_ts.encode() + b" stdout F " + payload + b"\n"


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


def good_payload(n: int, ts_ns: int, service: str, level: str, text: str, request_id: str) -> bytes:
    """A record as ``logging_config`` writes it (``timestamp`` first), its marker in ``message``."""
    return _json({"timestamp": iso_ms(ts_ns), "level": level, "logger": "app.orders", "message": f"{marker(n)} {text}",
                  "request_id": request_id, "service": service, "environment": "prod"})


def nest(depth: int, shape: str) -> bytes:
    """A JSON value nested ``depth`` levels deep (built iteratively: no recursion, any depth)."""
    if shape == "list":
        return b"[" * depth + b"1" + b"]" * depth
    if shape == "dict":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b'[{"a":' * (depth // 2) + b"1" + b"}]" * (depth // 2)


@dataclass(frozen=True)
class Bad:
    """One hostile line: ``kind`` names the category, ``args`` its parameters (see :func:`bad_payload`)."""

    kind: str
    args: tuple[Any, ...]
    cri_ts: str | None = None  # a hostile CRI time; None: the current time


def bad_payload(n: int, bad: Bad) -> bytes:
    """The payload bytes of a hostile line number ``n``."""
    m = marker(n).encode()
    a = bad.args
    if bad.kind == "time":  # (key, JSON text of the value)
        key, value = a
        return b'{"' + key.encode() + b'":' + value.encode() + b',"hpm":"' + m + b'","message":"time"}'
    if bad.kind == "deep":  # (depth, shape, key)
        depth, shape, key = a
        return b'{"hpm":"' + m + b'","' + key.encode() + b'":' + nest(depth, shape) + b',"service":"deep"}'
    if bad.kind == "odd":  # (key, value)
        key, value = a
        return b'{"hpm":"' + m + b'",' + _json(key) + b":" + _json(value) + b"}"
    if bad.kind == "utf8":  # (junk bytes, as JSON string or text)
        junk, as_json = a
        if as_json:
            return b'{"hpm":"' + m + b'","message":"a' + junk + b'b","k' + junk + b'":1}'
        return m + b" caf" + junk + b" text"
    if bad.kind == "control":  # (characters, as JSON or raw text)
        chars, as_json = a
        if as_json:
            return b'{"hpm":"' + m + b'","message":' + _json("x" + chars + "y") + b"," + _json(chars) + b":1}"
        return m + b" " + chars.encode("utf-8", "surrogatepass") + b" raw"
    if bad.kind == "collide":  # (field, value)
        key, value = a
        return b'{"hpm":"' + m + b'","message":"collide",' + _json(key) + b":" + _json(value) + b"}"
    if bad.kind == "huge":  # (size in characters, fill character, as JSON)
        size, fill, as_json = a
        body = (fill * size).encode()
        if as_json:
            return b'{"hpm":"' + m + b'","message":"' + body + b'"}'
        return m + b" " + body
    if bad.kind == "service":  # (a junk service value)
        (value,) = a
        return b'{"hpm":"' + m + b'","message":"junk service","service":' + _json(value) + b"}"
    if bad.kind == "text":  # (arbitrary text, not JSON or broken JSON)
        (text,) = a
        return m + b" " + text.encode("utf-8", "surrogatepass")
    if bad.kind == "broken":  # (text): starts like JSON, is not
        (text,) = a
        return b'{"hpm":"' + m + b'","message":' + text.encode("utf-8", "surrogatepass")
    raise ValueError(f"unknown kind {bad.kind}")
