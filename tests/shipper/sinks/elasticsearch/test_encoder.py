"""Bulk body encoding: create actions with the event's id, index names by date, the document."""

from __future__ import annotations

import orjson
import pytest

from shipper.event import Event
from shipper.sinks.elasticsearch.encoder import BulkEncoder, build_document, iso_ms

from ._support import DAY0_NS, DAY_NS, K8S, make_event


def _pairs(body: bytes) -> list[tuple[dict, dict]]:
    assert body.endswith(b"\n")
    lines = [orjson.loads(x) for x in body.split(b"\n")[:-1]]
    return list(zip(lines[0::2], lines[1::2], strict=True))


def test_each_event_is_a_create_with_its_own_id() -> None:
    events = [make_event(n) for n in range(3)]
    batch = BulkEncoder("ecvi-logs-%Y.%m.%d").encode(events)
    pairs = _pairs(batch.body)
    assert [a for a, _ in pairs] == [
        {"create": {"_index": "ecvi-logs-2025.01.01", "_id": e.id}} for e in events
    ]
    assert [e.id for e in events] == ["f00d:0", "f00d:100", "f00d:200"]
    assert batch.events == events and batch.rejected == []


def test_id_is_deterministic_without_a_source_id() -> None:
    e1 = Event({"message": "x"}, "x", DAY0_NS, {})
    e2 = Event({"message": "x"}, "x", DAY0_NS, {})
    a1 = _pairs(BulkEncoder("i").encode([e1]).body)[0][0]
    a2 = _pairs(BulkEncoder("i").encode([e2]).body)[0][0]
    assert a1 == a2 and len(a1["create"]["_id"]) == 32


def test_daily_index_follows_the_event_utc_date() -> None:
    events = [make_event(0, DAY0_NS + d * DAY_NS + s) for d in range(3)
              for s in (0, DAY_NS - 1_000_000)]  # first and last ms of each day
    pairs = _pairs(BulkEncoder("ecvi-logs-%Y.%m.%d").encode(events).body)
    assert [a["create"]["_index"] for a, _ in pairs] == [
        "ecvi-logs-2025.01.01", "ecvi-logs-2025.01.01", "ecvi-logs-2025.01.02", "ecvi-logs-2025.01.02",
        "ecvi-logs-2025.01.03", "ecvi-logs-2025.01.03"]


def test_hourly_index_is_not_cached_per_day() -> None:
    enc = BulkEncoder("logs-%Y.%m.%d-%H")
    assert enc.index_for(make_event(0, DAY0_NS)) == "logs-2025.01.01-00"
    assert enc.index_for(make_event(0, DAY0_NS + 3_600 * 10**9 * 5)) == "logs-2025.01.01-05"


def test_templated_index_is_rendered_in_lower_case() -> None:
    enc = BulkEncoder("app-{{ service }}-%Y.%m")
    assert enc.index_for(make_event(0, service="Billing")) == "app-billing-2025.01"


def test_data_stream_mode_creates_into_the_stream_name() -> None:
    events = [make_event(0), make_event(1, DAY0_NS + DAY_NS)]
    batch = BulkEncoder("ecvi-logs", data_stream=True).encode(events)
    pairs = _pairs(batch.body)
    assert [a["create"]["_index"] for a, _ in pairs] == ["ecvi-logs", "ecvi-logs"]
    assert all("@timestamp" in doc for _, doc in pairs)


def test_document_is_record_plus_timestamp_and_kubernetes() -> None:
    e = make_event(7, DAY0_NS + 123_456_789, exception={"type": "ValueError", "stacktrace": "Traceback"})
    doc = _pairs(BulkEncoder("i").encode([e]).body)[0][1]
    assert doc == {**e.record, "@timestamp": "2025-01-01T00:00:00.123Z", "kubernetes": K8S}
    assert doc["message"] == "order 7 created"


def test_record_kubernetes_fields_are_merged_with_metadata() -> None:
    e = make_event(0, kubernetes={"node": "n1", "pod_name": "stale"})
    assert build_document(e)["kubernetes"] == {"node": "n1", **K8S}
    assert "kubernetes" not in build_document(Event({"m": 1}, "", 0, {}))


@pytest.mark.parametrize(("ts_ns", "text"), [
    (0, "1970-01-01T00:00:00.000Z"),
    (DAY0_NS + 999_999_999, "2025-01-01T00:00:00.999Z"),
    (DAY0_NS - 1_000_000, "2024-12-31T23:59:59.999Z"),
])
def test_iso_ms(ts_ns: int, text: str) -> None:
    assert iso_ms(ts_ns) == text


def test_unencodable_values_are_made_representable() -> None:
    e = Event({"message": "bad \udcff byte", "big": 2**70, "codes": {404: 3}}, "x", DAY0_NS, {"id": "a"})
    batch = BulkEncoder("i").encode([e, make_event(1)])
    docs = [d for _, d in _pairs(batch.body)]
    assert docs[0]["big"] == str(2**70) and docs[0]["message"] == "bad ? byte"
    assert docs[0]["codes"] == {"404": 3}
    assert len(batch.events) == 2 and batch.rejected == []


def test_split_keeps_events_and_lines_together() -> None:
    batch = BulkEncoder("i").encode([make_event(n) for n in range(5)])
    a, b = batch.split()
    assert [e.id for e in a.events + b.events] == [e.id for e in batch.events]
    assert a.body + b.body == batch.body
    assert len(a.events) == 2


def test_an_event_json_cannot_carry_is_rejected_alone() -> None:
    deep: dict = {}
    cur = deep
    for _ in range(300):  # deeper than orjson (and Elasticsearch) nest
        cur["a"] = {}
        cur = cur["a"]
    bad = Event({"deep": deep}, "x", DAY0_NS, {"id": "deep"})
    batch = BulkEncoder("i").encode([make_event(0), bad, make_event(2)])
    assert [e.id for e in batch.events] == ["f00d:0", "f00d:200"]
    assert [(e.id, r.split(":")[0]) for e, r in batch.rejected] == [("deep", "encoding_error")]


def test_encoding_keeps_no_parsed_record_on_the_events() -> None:
    """Events in flight hold their raw line only: the bulk body is what their records make."""
    raws = ['{"level":"INFO","n":1}', "plain text", '{"nested":{"a":[1,2]}}']
    events = [Event(None, raw, DAY0_NS + i, {"source": "app"}) for i, raw in enumerate(raws)]
    body = BulkEncoder("ecvi-logs-%Y.%m.%d").encode(events).body
    assert all(e._record is None for e in events)
    docs = [doc for _, doc in _pairs(body)]
    assert [{k: v for k, v in d.items() if k != "@timestamp"} for d in docs] == [
        {"level": "INFO", "n": 1}, {"message": "plain text"}, {"nested": {"a": [1, 2]}}]
    parsed = Event({"level": "WARN"}, '{"level":"WARN"}', DAY0_NS, {})
    assert build_document(parsed) == {"level": "WARN", "@timestamp": iso_ms(DAY0_NS)}
    assert parsed.record == {"level": "WARN"}  # a record the event already held is copied, not changed
