"""Structured metadata and label fields whose keys hold dots (``app.kubernetes.io/name``).

Every field is checked against :func:`shipper.event.lookup_path`, the one rule templates use: the
path as split first, and on a miss the longest keys joined from the remaining parts.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from shipper.event import Event, lookup_path
from shipper.sinks.loki.encoder import JsonEncoder, ProtobufEncoder, StructuredMetadata, metadata_name
from shipper.sinks.loki.labels import Stream, field_getter
from tests.shipper.sinks.loki._logproto import decode

NAME_LABEL = "kubernetes.pod_labels.app.kubernetes.io/name"
LABELS = {"app": "backend", "app.kubernetes.io/name": "orders", "app.kubernetes.io/part-of": "shop"}

PATHS = [
    NAME_LABEL,
    "kubernetes.pod_labels.app",
    "kubernetes.pod_labels.app.kubernetes.io/part-of",
    "kubernetes.pod_name",
    "kubernetes.pod_uid",  # a miss: the record's "kubernetes.pod_uid" key counts only without derived metadata
    "http.status",
    "trace.id",
    "request_id",
    "a.b.c",
]
RECORDS: list[dict[str, Any]] = [
    {"request_id": "r1", "http": {"status": 200}, "trace": {"id": "t1"}},
    {"request_id": "r2", "http.status": 404, "trace.id": "t2", "a.b": {"c": "joined-then-nested"}},
    {"http": {"method": "GET"}, "http.status": 500, "a": {"b.c": "nested-then-joined"}},
    {"kubernetes.pod_uid": "spoofed", "kubernetes": {"pod_name": "from-record"}, "a.b.c": "whole"},
    {"message": "plain"},
]
METAS: list[dict[str, Any]] = [
    {"source": "app", "kubernetes": {"namespace": "prod", "pod_name": "api-1", "pod_labels": dict(LABELS)}},
    {"source": "app", "kubernetes": {"namespace": "prod", "pod_name": "api-2", "pod_labels": {"app": "x"}}},
    {"source": "fwd"},  # a forward peer: no derived kubernetes, the record's own is read
    {"source": "fwd", "kubernetes.pod_name": "flat-meta"},
]


def _events() -> list[Event]:
    return [Event(dict(r), orjson.dumps(r).decode(), 1_735_689_600_000_000_000 + i, dict(m))
            for i, (r, m) in enumerate(itertools.product(RECORDS, METAS))]


def _expected(event: Event, path: str) -> str | None:
    v = lookup_path(event.record, event.meta, tuple(path.split(".")))
    if v is None:
        return None
    text = v if isinstance(v, str) else orjson.dumps(v).decode()
    return text or None


def test_field_getter_agrees_with_lookup_path() -> None:
    for path in PATHS:
        get = field_getter(path)
        for event in _events():
            expected = lookup_path(event.record, event.meta, tuple(path.split(".")))
            assert get(event.record, event.meta) == expected, (path, event.record, event.meta)


def test_label_key_with_dots_is_found() -> None:
    event = _events()[0]
    assert field_getter(NAME_LABEL)(event.record, event.meta) == "orders"
    assert field_getter("kubernetes.pod_labels.app")(event.record, event.meta) == "backend"


@pytest.mark.parametrize("path", PATHS)
def test_protobuf_metadata_agrees_with_lookup_path(path: str) -> None:
    """Each path alone, and all of them together, through the columnar protobuf writer."""
    for paths in ([path], PATHS):
        events = _events()
        encoder = ProtobufEncoder(StructuredMetadata(paths))
        req = decode(encoder.serialize([Stream('{job="t"}', (("job", "t"),), events)]))
        entries = req.streams[0].entries
        assert len(entries) == len(events)
        name = metadata_name(path)
        for entry, event in zip(entries, events, strict=True):
            got = {p.name: p.value for p in entry.structuredMetadata}
            assert got.get(name) == _expected(event, path), (path, event.record, event.meta)


def test_json_metadata_agrees_with_lookup_path() -> None:
    metadata = StructuredMetadata(PATHS)
    body = orjson.loads(JsonEncoder(metadata).serialize([Stream('{job="t"}', (("job", "t"),), _events())]))
    values = body["streams"][0]["values"]
    for value, event in zip(values, _events(), strict=True):
        got = value[2] if len(value) == 3 else {}
        want = {metadata_name(p): v for p in PATHS if (v := _expected(event, p)) is not None}
        assert got == want, (event.record, event.meta)


def test_dotted_label_key_in_metadata() -> None:
    events = _events()[:1]
    req = decode(ProtobufEncoder(StructuredMetadata([NAME_LABEL])).serialize(
        [Stream('{job="t"}', (("job", "t"),), events)]))
    pairs = [(p.name, p.value) for p in req.streams[0].entries[0].structuredMetadata]
    assert pairs == [("kubernetes_pod_labels_app_kubernetes_io_name", "orders")]
