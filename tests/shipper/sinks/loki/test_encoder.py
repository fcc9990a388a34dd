"""Push request encoding: protobuf decoded with a descriptor built apart from the encoder; JSON."""

from __future__ import annotations

import cramjam
import orjson
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from shipper.event import Event
from shipper.sinks.loki.encoder import (
    JsonEncoder,
    ProtobufEncoder,
    StructuredMetadata,
    build_encoder,
    metadata_name,
    varint,
)
from shipper.sinks.loki.labels import CardinalityGuard, LabelRenderer
from tests.factories import event
from tests.shipper.sinks.loki._logproto import decode

LABELS = {"service": "{{ service }}", "level": "{{ level }}"}
METADATA = ["request_id", "user_id", "company_id", "trace_id", "kubernetes.pod_name"]


def _event(ts_ns: int, **record: object) -> Event:
    record.setdefault("service", "api")
    record.setdefault("level", "INFO")
    return event(record, ts_ns=ts_ns,
                 meta={"kubernetes": {"namespace": "prod", "pod_name": "api-7d9f", "container_name": "api"}})


def _streams(events: list[Event], labels: dict[str, str] = LABELS) -> list:
    return LabelRenderer(labels, CardinalityGuard(500)).group(events)


def test_varint_matches_protobuf() -> None:
    for n in [1, 127, 128, 300, 16383, 16384, 2**31, 1_795_738_274, 2**63 - 1, -1]:
        assert b"\x08" + varint(n) == Timestamp(seconds=n).SerializeToString()


def test_protobuf_round_trip() -> None:
    events = [
        _event(1_700_000_000_123_000_000, message="first", request_id="r-1", user_id=42, company_id="c-1"),
        _event(1_700_000_001_000_000_000, message="héllo \u2603", level="ERROR", trace_id="t-9"),
        _event(1_700_000_000_999_999_999, message="second", request_id="", user_id=None),
    ]
    body = ProtobufEncoder(StructuredMetadata(METADATA)).serialize(_streams(events))
    req = decode(body)

    assert [s.labels for s in req.streams] == ['{level="INFO", service="api"}', '{level="ERROR", service="api"}']
    info, error = req.streams
    assert [(e.timestamp.seconds, e.timestamp.nanos) for e in info.entries] == [
        (1_700_000_000, 123_000_000), (1_700_000_000, 999_999_999)]
    assert [e.line for e in info.entries] == [events[0].raw, events[2].raw]
    assert {p.name: p.value for p in info.entries[0].structuredMetadata} == {
        "request_id": "r-1", "user_id": "42", "company_id": "c-1", "kubernetes_pod_name": "api-7d9f"}
    # Missing, None and empty values are left out.
    assert {p.name: p.value for p in info.entries[1].structuredMetadata} == {"kubernetes_pod_name": "api-7d9f"}
    assert error.entries[0].line == events[1].raw
    assert (error.entries[0].timestamp.seconds, error.entries[0].timestamp.nanos) == (1_700_000_001, 0)
    assert {p.name: p.value for p in error.entries[0].structuredMetadata} == {
        "trace_id": "t-9", "kubernetes_pod_name": "api-7d9f"}


def test_protobuf_body_is_snappy_block() -> None:
    enc = build_encoder("protobuf", METADATA)
    streams = _streams([_event(1_700_000_000_000_000_000, message="x" * 1000)])
    req = enc.encode(streams)
    assert (req.content_type, req.content_encoding) == ("application/x-protobuf", None)
    assert bytes(cramjam.snappy.decompress_raw(req.body)) == enc.serialize(streams)
    assert len(req.body) < 500


def test_entries_sorted_per_stream_and_one_stream_per_label_set() -> None:
    events = [_event(t, level=lvl, message=f"m{t}") for t, lvl in
              [(5, "INFO"), (3, "WARN"), (1, "INFO"), (4, "INFO"), (2, "WARN"), (3, "INFO")]]
    streams = _streams(events)
    assert [(s.labels, [e.ts_ns for e in s.events]) for s in streams] == [
        ('{level="INFO", service="api"}', [1, 3, 4, 5]),
        ('{level="WARN", service="api"}', [2, 3]),
    ]
    req = decode(ProtobufEncoder(StructuredMetadata([])).serialize(streams))
    assert [[e.timestamp.nanos for e in s.entries] for s in req.streams] == [[1, 3, 4, 5], [2, 3]]


def test_equal_timestamps_keep_their_order() -> None:
    events = [_event(7, message=f"m{i}") for i in range(5)]
    [stream] = _streams(events)
    assert [e.record["message"] for e in stream.events] == [f"m{i}" for i in range(5)]


def test_long_lines_and_values_use_multi_byte_lengths() -> None:
    line_event = _event(1, message="y" * 70_000, request_id="r" * 300)
    req = decode(ProtobufEncoder(StructuredMetadata(METADATA)).serialize(_streams([line_event])))
    entry = req.streams[0].entries[0]
    assert entry.line == line_event.raw
    assert entry.structuredMetadata[0].value == "r" * 300


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    bad = Event({"service": "api", "level": "INFO"}, "bad \udcff line", 1)
    req = decode(ProtobufEncoder(StructuredMetadata([])).serialize(_streams([bad])))
    assert req.streams[0].entries[0].line == "bad ? line"
    doc = orjson.loads(JsonEncoder(StructuredMetadata([])).serialize(_streams([bad])))
    assert doc["streams"][0]["values"][0][1] == "bad ? line"


def test_json_round_trip() -> None:
    events = [_event(1_700_000_000_123_000_000, message="a", request_id="r-1"),
              _event(1_700_000_000_000_000_000, message="b")]
    enc = build_encoder("json", METADATA)
    req = enc.encode(_streams(events))
    assert (req.content_type, req.content_encoding) == ("application/json", "gzip")
    doc = orjson.loads(bytes(cramjam.gzip.decompress(req.body)))
    assert doc == {"streams": [{
        "stream": {"level": "INFO", "service": "api"},
        "values": [
            ["1700000000000000000", events[1].raw, {"kubernetes_pod_name": "api-7d9f"}],
            ["1700000000123000000", events[0].raw, {"request_id": "r-1", "kubernetes_pod_name": "api-7d9f"}],
        ],
    }]}


def test_metadata_names_follow_label_syntax() -> None:
    assert metadata_name("kubernetes.pod_name") == "kubernetes_pod_name"
    assert metadata_name("http.status-code") == "http_status_code"
    assert metadata_name("9lives") == "_9lives"


def test_non_string_metadata_is_json() -> None:
    sm = StructuredMetadata(["n", "ok", "ctx"])
    ev = Event({"n": 3, "ok": True, "ctx": {"a": 1}}, "", 0)
    assert sm.pairs(ev) == {"n": "3", "ok": "true", "ctx": '{"a":1}'}


_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**62), st.sampled_from(["INFO", "WARN", "ERROR"]), _text, _text),
                min_size=1, max_size=30))
def test_protobuf_round_trip_property(rows: list[tuple[int, str, str, str]]) -> None:
    events = [Event({"service": "api", "level": lvl, "request_id": rid}, line, ts, {})
              for ts, lvl, line, rid in rows]
    streams = _streams(events)
    req = decode(ProtobufEncoder(StructuredMetadata(["request_id"])).serialize(streams))
    assert [s.labels for s in req.streams] == [s.labels for s in streams]
    for got, want in zip(req.streams, streams, strict=True):
        assert [e.timestamp.seconds * 10**9 + e.timestamp.nanos for e in got.entries] == [
            e.ts_ns for e in want.events]
        assert [e.line for e in got.entries] == [e.raw for e in want.events]
        assert [{p.name: p.value for p in e.structuredMetadata} for e in got.entries] == [
            {"request_id": e.record["request_id"]} if e.record["request_id"] else {} for e in want.events]
