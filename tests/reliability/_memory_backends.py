"""In-memory stand-ins for Loki, Elasticsearch and CloudWatch Logs that check what the real encoders send.

Each one receives exactly the bytes (or API parameters) the sink would put on the wire, decodes them
independently (Loki's protobuf with the descriptor-built decoder of the Loki tests), applies the
backend's own limits where the backend rejects an item or a stream on its own, and records what it
stored as ``(marker, projection)`` pairs: the projection is what a reader of the backend sees of
one event. Anything that a real backend could not store at all, or would store in a form no reader
can use, goes to ``problems``.
"""

from __future__ import annotations

import gzip
import re
import threading
from typing import Any

import cramjam
import httpx
import orjson
from botocore.exceptions import ClientError

from shipper.sinks.loki.labels import format_labels
from tests.reliability._poison_lines import INT64_MAX, INT64_MIN, marker_of
from tests.shipper.sinks.loki._logproto import decode

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_LABELS = re.compile(r'^\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:, )?)*\}$')
_LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
# Loki's defaults: validation.max_label_value_length and max_label_name_length.
LOKI_MAX_LABEL_VALUE = 2048
LOKI_MAX_LABEL_NAME = 1024
# google.protobuf.Timestamp: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
_PB_MIN_SECS, _PB_MAX_SECS = -62135596800, 253402300799
_ES_META_FIELDS = frozenset({"_id", "_index", "_routing", "_source", "_seq_no", "_primary_term", "_version",
                             "_ignored", "_field_names", "_doc_count", "_tier", "_nested_path"})
_ES_BAD_INDEX_CHARS = set('\\/*?"<>| ,#:')
_ES_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ES_MAX_OBJECT_DEPTH = 20  # index.mapping.depth.limit
_CW_GROUP = re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$")
CW_MAX_BATCH_BYTES, CW_OVERHEAD, CW_MAX_EVENTS = 1_048_576, 26, 10_000
CW_MAX_SPAN_MS, CW_MAX_AGE_MS, CW_MAX_AHEAD_MS = 24 * 3600 * 1000, 14 * 24 * 3600 * 1000, 2 * 3600 * 1000


class Capture:
    """What one backend stored, by generated-line marker, and what it could not make sense of."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.units: list[tuple[int | None, Any]] = []
        self.problems: list[str] = []
        self.requests = 0
        self._seen: set[Any] = set()
        self._lock = threading.Lock()

    def add(self, marked: bytes | str, projection: Any, dedup: bool = False) -> None:
        with self._lock:
            if dedup:
                key = repr(projection)
                if key in self._seen:
                    return
                self._seen.add(key)
            self.units.append((marker_of(marked), projection))

    def problem(self, text: str) -> None:
        with self._lock:
            self.problems.append(f"{self.name}: {text}"[:600])

    def by_marker(self) -> dict[int | None, list[Any]]:
        out: dict[int | None, list[Any]] = {}
        for n, proj in self.units:
            out.setdefault(n, []).append(proj)
        return out


def ts_problem(ts_ns: int) -> str | None:
    """Why an event time is not one every backend can hold (int64 nanoseconds), or None."""
    if not INT64_MIN <= ts_ns <= INT64_MAX:
        return f"event time {ts_ns} ns is outside int64 nanoseconds"
    return None


# -- Loki --------------------------------------------------------------------------------------------


def loki_handler(cap: Capture, encoding: str) -> Any:
    """A push endpoint: 204, or 400 naming streams whose labels Loki refuses (it keeps the others)."""

    def handle(request: httpx.Request) -> httpx.Response:
        cap.requests += 1
        try:
            streams = _loki_streams(request.content, encoding)
        except Exception as exc:  # what Loki answers to a body it cannot parse
            cap.problem(f"push body not decodable: {type(exc).__name__}: {exc}")
            return httpx.Response(400, text=f"error at storage: cannot parse push request: {exc}")
        refused: list[str] = []
        for labels, pairs, entries in streams:
            why = _loki_stream_refusal(labels, pairs)
            if why:
                refused.append(why)
                continue
            for ts_ns, line, sm in entries:
                if (p := ts_problem(ts_ns)) or not _PB_MIN_SECS <= ts_ns // 10**9 <= _PB_MAX_SECS:
                    cap.problem(f"entry {line[:80]!r}: {p or 'timestamp outside protobuf Timestamp range'}")
                cap.add(line, (labels, ts_ns, line, sm), dedup=True)
        if refused:
            return httpx.Response(400, text="; ".join(refused))
        return httpx.Response(204)

    return handle


def _loki_streams(body: bytes, encoding: str) -> list[tuple[str, tuple[tuple[str, str], ...], list[Any]]]:
    out = []
    if encoding == "protobuf":
        req = decode(bytes(cramjam.snappy.decompress_raw(body)))
        for s in req.streams:
            if not _LABELS.match(s.labels):
                raise ValueError(f"labels {s.labels[:200]!r} do not parse")
            pairs = tuple(_LABEL_PAIR.findall(s.labels))
            entries = [(e.timestamp.seconds * 10**9 + e.timestamp.nanos, e.line,
                        tuple(sorted((p.name, p.value) for p in e.structuredMetadata))) for e in s.entries]
            out.append((s.labels, pairs, entries))
        return out
    doc = orjson.loads(gzip.decompress(body))
    for s in doc["streams"]:
        pairs = tuple(sorted(s["stream"].items()))
        labels = format_labels(pairs)  # how Loki prints a label set in its answers
        entries = []
        for v in s["values"]:
            ts = int(v[0])
            sm = tuple(sorted(v[2].items())) if len(v) > 2 else ()
            entries.append((ts, v[1], sm))
        out.append((labels, pairs, entries))
    return out


def _loki_stream_refusal(labels: str, pairs: tuple[tuple[str, str], ...]) -> str | None:
    """Loki's own 400 text for a stream it refuses as a whole (``pkg/validation`` messages)."""
    for name, value in pairs:
        if len(name) > LOKI_MAX_LABEL_NAME:
            return f"stream '{labels}' has label name too long: '{name}'"
        if len(value.encode()) > LOKI_MAX_LABEL_VALUE:
            return f"stream '{labels}' has label value too long: '{value}'"
    return None


# -- Elasticsearch ---------------------------------------------------------------------------------------


def es_handler(cap: Capture) -> Any:
    """A ``_bulk`` endpoint: a body that does not parse fails whole (400); items fail one by one."""

    def handle(request: httpx.Request) -> httpx.Response:
        cap.requests += 1
        body = request.content
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        lines = body.split(b"\n")
        if lines[-1] != b"" or len(lines) % 2 != 1:
            cap.problem("bulk body is not action/document line pairs")
            return httpx.Response(400, json={"error": {"type": "illegal_argument_exception",
                                                       "reason": "The bulk request must be terminated by a newline"}})
        items = []
        for action, doc in zip(lines[:-1:2], lines[1:-1:2], strict=True):
            try:
                act = orjson.loads(action)["create"]
                src = orjson.loads(doc)
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                cap.problem(f"bulk line does not parse ({exc}): {doc[:120]!r}")
                return httpx.Response(400, json={"error": {"type": "x_content_parse_exception", "reason": str(exc)}})
            why = _es_item_refusal(act.get("_index"), src)
            if why:
                items.append({"create": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": why}}})
                continue
            items.append({"create": {"status": 201}})
            cap.add(doc, (act["_index"], src))
        return httpx.Response(200, json={"errors": any(i["create"]["status"] != 201 for i in items), "items": items})

    return handle


def _es_item_refusal(index: Any, doc: Any) -> str | None:
    """Why Elasticsearch would refuse one document (its own per-item 400), or None."""
    if not isinstance(index, str) or not index or index != index.lower() or index[0] in "-_+" \
            or set(index) & _ES_BAD_INDEX_CHARS or len(index.encode()) > 255 or index in (".", ".."):
        return f"invalid_index_name_exception: [{index}]"
    if not isinstance(doc, dict):
        return "document is not an object"
    if not isinstance(doc.get("@timestamp"), str) or not _ES_TIMESTAMP.match(doc["@timestamp"]):
        return f"failed to parse field [@timestamp] of type [date]: {str(doc.get('@timestamp'))[:60]}"
    meta = _ES_META_FIELDS & set(doc)
    if meta:
        return f"Field [{sorted(meta)[0]}] is a metadata field and cannot be added inside a document"
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if depth > ES_MAX_OBJECT_DEPTH:
                return f"Limit of mapping depth [{ES_MAX_OBJECT_DEPTH}] has been exceeded"
            for k, v in value.items():
                if not k.strip() or not k.strip("."):
                    return f"field name cannot be empty or only dots: {k!r}"
                stack.append((v, depth + 1))
        elif isinstance(value, list):
            stack.extend((v, depth) for v in value)
    return None


# -- CloudWatch Logs -----------------------------------------------------------------------------------


def _client_error(code: str, message: str, op: str = "PutLogEvents") -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}
    return ClientError(response, op)


class MemoryLogs:
    """The CloudWatch Logs client calls the sink makes, with PutLogEvents' documented limits.

    Parameter names are AWS's (``logGroupName``), as the sink passes them by keyword.
    """

    def __init__(self, cap: Capture, clock: Any) -> None:
        self.cap = cap
        self.clock = clock
        self.groups: set[str] = set()
        self.streams: set[tuple[str, str]] = set()

    def close(self) -> None:
        return None

    def create_log_group(self, logGroupName: str) -> None:
        if not _CW_GROUP.match(logGroupName):
            raise _client_error("InvalidParameterException", f"invalid log group name {logGroupName!r}")
        self.groups.add(logGroupName)

    def create_log_stream(self, logGroupName: str, logStreamName: str) -> None:
        if logGroupName not in self.groups:
            raise _client_error("ResourceNotFoundException", "The specified log group does not exist.")
        if not 1 <= len(logStreamName) <= 512 or ":" in logStreamName or "*" in logStreamName:
            raise _client_error("InvalidParameterException", f"invalid log stream name {logStreamName!r}")
        self.streams.add((logGroupName, logStreamName))

    def put_retention_policy(self, logGroupName: str, retentionInDays: int) -> None:
        return None

    def put_log_events(self, logGroupName: str, logStreamName: str, logEvents: list[dict[str, Any]],
                       sequenceToken: str | None = None) -> dict[str, Any]:
        self.cap.requests += 1
        if (logGroupName, logStreamName) not in self.streams:
            raise _client_error("ResourceNotFoundException", "The specified log stream does not exist.")
        why = self._refusal(logEvents)
        if why:
            self.cap.problem(why)
            raise _client_error("InvalidParameterException", why)
        for e in logEvents:
            self.cap.add(e["message"], (logGroupName, logStreamName, e["timestamp"], e["message"]))
        return {}

    def _refusal(self, events: list[dict[str, Any]]) -> str | None:
        if not 1 <= len(events) <= CW_MAX_EVENTS:
            return f"{len(events)} events in one call"
        now = int(self.clock() * 1000)
        size = 0
        for i, e in enumerate(events):
            msg, ts = e.get("message"), e.get("timestamp")
            if not isinstance(msg, str) or not msg:
                return f"event {i}: empty or missing message"
            try:
                n = len(msg.encode("utf-8"))
            except UnicodeEncodeError:
                return f"event {i}: message is not valid UTF-8: {msg[:80]!r}"
            if n + CW_OVERHEAD > 1_048_576:
                return f"event {i}: {n} bytes, over the event size limit"
            size += n + CW_OVERHEAD
            if not isinstance(ts, int) or not now - CW_MAX_AGE_MS <= ts <= now + CW_MAX_AHEAD_MS:
                return f"event {i}: timestamp {ts} outside the 14 days / 2 hours window (not filtered by the sink)"
            if i and ts < events[i - 1]["timestamp"]:
                return "events not in chronological order"
        if size > CW_MAX_BATCH_BYTES:
            return f"batch of {size} bytes"
        if events[-1]["timestamp"] - events[0]["timestamp"] > CW_MAX_SPAN_MS:
            return "batch spans more than 24 hours"
        return None
