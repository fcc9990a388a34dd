"""Archive objects: the archived line format, gzip NDJSON parts of bounded size, and reading them back.

Every archived line is one JSON object with ``ts_ns`` (event time, ns since the epoch, UTC) and
``line`` (the original line: the Loki entry, the CloudWatch message, the raw line at ingest, or the
Elasticsearch document as compact JSON), plus where it lived, so a restore rebuilds the same entries:

* Loki: ``labels`` (the stream) and ``metadata`` (structured metadata).
* Elasticsearch: ``index`` and ``id`` (the document id, kept on restore).
* CloudWatch Logs: ``group``, ``stream`` and ``ingestion_ms``.
* Ingest (the ``s3`` sink): ``id``, ``meta`` (source, kubernetes, ...) and ``record`` when a transform
  changed the fields parsed from ``line``.

Parts are gzip with a zero mtime and no file name, so the same lines always make the same bytes
(and the same SHA-256): a re-run after a crash recognises and keeps what it already uploaded.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

#: Largest uncompressed size of one object (the issue's bound).
DEFAULT_MAX_OBJECT_BYTES = 64 * 1024 * 1024
OBJECT_SUFFIX = ".ndjson.gz"


def encode_line(record: dict[str, Any]) -> bytes:
    """One archived line (JSON + newline); values JSON cannot carry are written as strings."""
    try:
        return orjson.dumps(record, default=str) + b"\n"
    except orjson.JSONEncodeError:  # lone surrogates in a line: keep it, with replacements
        return orjson.dumps(_replace_surrogates(record), default=str) + b"\n"


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_replace_surrogates(str(k)): _replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replace_surrogates(v) for v in value]
    return value


@dataclass(slots=True)
class Part:
    """A finished object: gzip bytes and what the manifest says about them."""

    data: bytes
    events: int
    uncompressed_bytes: int
    sha256: str
    min_ts_ns: int
    max_ts_ns: int


def gzip_bytes(data: bytes, level: int = 6) -> bytes:
    """Deterministic gzip (mtime 0, no name) of ``data``."""
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


class PartWriter:
    """Gzips lines into parts of at most ``max_bytes`` uncompressed (a single longer line goes alone)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_OBJECT_BYTES, level: int = 6) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self.level = level
        self._reset()

    def _reset(self) -> None:
        self._z = zlib.compressobj(self.level, zlib.DEFLATED, 31)
        self._out: list[bytes] = []
        self._events = 0
        self._size = 0
        self._min = 0
        self._max = 0

    def add(self, line: bytes, ts_ns: int) -> Part | None:
        """Add one encoded line; returns the previous part when this line did not fit in it."""
        done = None
        if self._events and self._size + len(line) > self.max_bytes:
            done = self.finish()
        if self._events == 0:
            self._min = self._max = ts_ns
        else:
            self._min = min(self._min, ts_ns)
            self._max = max(self._max, ts_ns)
        self._out.append(self._z.compress(line))
        self._events += 1
        self._size += len(line)
        return done

    @property
    def pending_events(self) -> int:
        return self._events

    def finish(self) -> Part | None:
        """The part being written (None when empty); the writer starts a new one."""
        if self._events == 0:
            return None
        self._out.append(self._z.flush())
        data = b"".join(self._out)
        part = Part(data, self._events, self._size, hashlib.sha256(data).hexdigest(), self._min, self._max)
        self._reset()
        return part


@dataclass(slots=True)
class ObjectScan:
    """What an object really holds, read back line by line."""

    events: int = 0
    uncompressed_bytes: int = 0
    min_ts_ns: int | None = None
    max_ts_ns: int | None = None
    bad_lines: int = 0
    first_error: str = ""


def iter_lines(data: bytes) -> Iterator[bytes]:
    """The lines of a gzip NDJSON object (raises ``zlib.error`` on damaged gzip)."""
    raw = zlib.decompress(data, 47)  # 32 + 15: gzip (or zlib) header, full window
    start = 0
    n = len(raw)
    while start < n:
        end = raw.find(b"\n", start)
        if end < 0:
            end = n
        if end > start:
            yield raw[start:end]
        start = end + 1


def iter_records(data: bytes) -> Iterator[dict[str, Any]]:
    """The archived lines of an object as dicts (raises on damaged gzip or JSON)."""
    for line in iter_lines(data):
        rec = orjson.loads(line)
        if not isinstance(rec, dict):
            raise ValueError("an archived line is not a JSON object")
        yield rec


def scan_object(data: bytes) -> ObjectScan:
    """Count and check the lines of an object: each must be a JSON object with an integer ``ts_ns``."""
    scan = ObjectScan()
    try:
        raw = zlib.decompress(data, 47)
    except zlib.error as exc:
        scan.bad_lines = 1
        scan.first_error = f"not valid gzip: {exc}"
        return scan
    scan.uncompressed_bytes = len(raw)
    lo = hi = None
    for n, line in enumerate(raw.split(b"\n"), 1):
        if not line:
            continue
        scan.events += 1
        try:
            ts = orjson.loads(line)["ts_ns"]
            if type(ts) is not int:
                raise TypeError("ts_ns is not an integer")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            scan.bad_lines += 1
            if not scan.first_error:
                scan.first_error = f"line {n}: {type(exc).__name__}: {exc}"
            continue
        lo = ts if lo is None or ts < lo else lo
        hi = ts if hi is None or ts > hi else hi
    scan.min_ts_ns, scan.max_ts_ns = lo, hi
    return scan


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
