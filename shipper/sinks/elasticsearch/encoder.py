"""Events to an ``_bulk`` request body: one ``create`` action with the event's id, then the document."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson

from shipper.event import Event
from shipper.sinks.elasticsearch.names import DEFAULT_MAX_INDICES, IndexNamer

_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


@dataclass(slots=True)
class BulkBatch:
    """An encoded batch: ``lines[i]`` (action + document) belongs to ``events[i]``.

    Events that could not be encoded at all are in ``rejected`` and not in the body.
    """

    events: list[Event] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    rejected: list[tuple[Event, str]] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.lines)

    def split(self) -> tuple[BulkBatch, BulkBatch]:
        """Two halves (to resend a body the server found too large)."""
        mid = len(self.events) // 2
        return (BulkBatch(self.events[:mid], self.lines[:mid]),
                BulkBatch(self.events[mid:], self.lines[mid:]))


@lru_cache(maxsize=4096)
def _second(secs: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))


def iso_ms(ts_ns: int) -> str:
    """``2025-01-01T00:00:00.123Z`` (UTC, milliseconds) for a time in ns since the epoch."""
    secs, ms = divmod(ts_ns // 1_000_000, 1000)
    return _second(secs) + _MILLIS[ms]


def build_document(event: Event) -> dict[str, Any]:
    """The record's fields plus ``@timestamp`` (event time, ms) and ``kubernetes.*`` metadata."""
    doc = event.record_copy()  # the event keeps no parsed record while its request is in flight
    doc["@timestamp"] = iso_ms(event.ts_ns)
    k8s = event.meta.get("kubernetes")
    if k8s:
        own = doc.get("kubernetes")
        doc["kubernetes"] = {**own, **k8s} if isinstance(own, dict) else k8s
    return doc


class BulkEncoder:
    """Encodes batches for one sink's ``index`` setting (daily indices or a data stream name)."""

    def __init__(self, index: str, data_stream: bool = False, *, max_indices: int = DEFAULT_MAX_INDICES,
                 max_indices_per_pod: int | None = None, sink: str = "") -> None:
        self.index = index
        self.names = IndexNamer(index, data_stream, max_indices=max_indices,
                                max_indices_per_pod=max_indices_per_pod, sink=sink)
        self._prefixes: dict[str, bytes] = {}

    def index_for(self, event: Event) -> str:
        """The index (or data stream) ``event`` goes to (see :mod:`~shipper.sinks.elasticsearch.names`)."""
        return self.names.index_for(event)

    def _action_prefix(self, index: str) -> bytes:
        prefix = self._prefixes.get(index)
        if prefix is None:
            if len(self._prefixes) > 1024:
                self._prefixes.clear()
            prefix = self._prefixes[index] = b'{"create":{"_index":' + orjson.dumps(index) + b',"_id":'
        return prefix

    def encode(self, events: list[Event]) -> BulkBatch:
        """One ``create`` per event with ``_id = event.id``, so a resent event is not indexed twice."""
        batch = BulkBatch()
        self.names.refresh()
        ok_events, lines = batch.events, batch.lines
        dumps = orjson.dumps
        for event in events:
            try:
                doc = dumps(build_document(event), default=str)
            except (orjson.JSONEncodeError, TypeError) as exc:
                # Rare: non-string keys, lone surrogates, integers beyond 64 bits.
                try:
                    doc = dumps(_sanitize(build_document(event)), default=str)
                except (orjson.JSONEncodeError, TypeError):
                    batch.rejected.append((event, f"encoding_error: {exc}"))
                    continue
            action = self._action_prefix(self.index_for(event)) + dumps(event.id) + b"}}\n"
            lines.append(action + doc + b"\n")
            ok_events.append(event)
        return batch


def _sanitize(value: Any) -> Any:
    """What JSON cannot carry, made representable: lone surrogates replaced, huge ints as strings."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, dict):
        return {_sanitize(str(k)): _sanitize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_sanitize(v) for v in value]
    return value
