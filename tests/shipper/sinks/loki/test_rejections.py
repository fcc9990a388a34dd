"""Mapping Loki 400 bodies back to events, with bodies captured from a real Loki 3.7.6.

``loki_400_bodies.json`` holds, per case, the events pushed (protobuf), Loki's 400 body and the
lines Loki had stored afterwards (read back with query_range): the ground truth the mapping must
respect: never dead-letter a stored line, never drop an unstored one silently.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.event import Event
from shipper.sinks.loki.encoder import StructuredMetadata
from shipper.sinks.loki.labels import CardinalityGuard, LabelRenderer, Stream
from shipper.sinks.loki.rejections import _go_time_ns, parse_labels, read_rejections
from tests.factories import event

FIXTURE = orjson.loads((Path(__file__).parent / "loki_400_bodies.json").read_bytes())
_REPEAT = re.compile(r"<x\*(\d+)>")

EXPECTED = {
    # case: (rejected, unconfirmed) by message
    "too_old_and_new": ({"old1", "old2", "old3", "new1"}, {"ok1", "ok2"}),
    "two_streams_old": ({"a-old", "b-old"}, {"a-ok", "b-ok"}),
    "behind_listed": ({"b1", "b2", "b3"}, set()),
    "behind_many": ({f"b{i:02d}" for i in range(15)}, set()),
    "behind_hidden_by_old": ({"b-old"}, {"a-behind", "a-ok", "b-ok"}),
    "old_hidden_by_behind": ({"z-behind"}, {"b-old", "b-ok"}),
    "line_too_long": ({"<x*300000>"}, {"ok"}),
    "label_value_too_long": ({"bad"}, {"ok"}),
}


def _event(record: dict[str, Any], ts_ns: int) -> Event:
    rec = dict(record)
    m = _REPEAT.fullmatch(rec["message"])
    if m:
        rec["message"] = "x" * int(m[1])
    return event(rec, ts_ns=ts_ns, meta={"label": record["message"]})


def _case(name: str) -> tuple[dict[str, Any], list[Stream]]:
    case = FIXTURE["cases"][name]
    events = [_event(r, ts) for r, ts in case["events"]]
    return case, LabelRenderer(FIXTURE["labels"], CardinalityGuard(500)).group(events)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_captured_bodies_map_to_the_right_events(name: str) -> None:
    case, streams = _case(name)
    assert case["status"] == 400
    verdict = read_rejections(case["body"], streams, StructuredMetadata(FIXTURE["structured_metadata"]).pairs)

    rejected = {e.meta["label"] for e, _ in verdict.rejected}
    unconfirmed = {e.meta["label"] for e in verdict.unconfirmed}
    assert (rejected, unconfirmed) == EXPECTED[name]
    stored = set(case["stored"])
    assert not rejected & {s[:20] for s in stored}, "a line Loki stored would be dead-lettered"
    everything = {e.meta["label"] for s in streams for e in s.events}
    assert everything - stored <= rejected | unconfirmed, "a line Loki dropped would be lost silently"


def test_reasons_are_lokis_words_with_a_kind_first() -> None:
    _, streams = _case("too_old_and_new")
    verdict = read_rejections(FIXTURE["cases"]["too_old_and_new"]["body"], streams)
    reasons = {e.meta["label"]: r for e, r in verdict.rejected}
    assert reasons["old1"].startswith("greater_than_max_sample_age: entry for stream '{case=")
    assert "has timestamp too old: " in reasons["old1"] and "errors like" not in reasons["old1"]
    assert reasons["new1"].startswith("too_far_in_future: ")

    _, streams = _case("behind_many")
    verdict = read_rejections(FIXTURE["cases"]["behind_many"]["body"], streams)
    reasons = {e.meta["label"]: r for e, r in verdict.rejected}
    # Loki lists the ten oldest (b14..b05) and counts the rest: they are the next oldest.
    assert reasons["b14"].startswith("too_far_behind: entry with timestamp ")
    assert "one of 15 entries" in reasons["b00"]


def test_same_second_too_old_takes_the_oldest() -> None:
    body = ("2 errors like: entry for stream '{service=\"api\", service_name=\"api\"}' has timestamp too old: "
            "2024-01-01T00:00:00Z, oldest acceptable timestamp is: 2024-01-01T00:00:00Z\n")
    base = 1_704_067_200 * 10**9
    events = [Event({"service": "api"}, f"l{i}", base + i * 100_000_000) for i in (5, 1, 9, 3)]
    streams = LabelRenderer({"service": "{{ service }}"}, CardinalityGuard(5)).group(events)
    verdict = read_rejections(body, streams)
    assert sorted(e.raw for e, _ in verdict.rejected) == ["l1", "l3"]
    assert sorted(e.raw for e in verdict.unconfirmed) == ["l5", "l9"]


def test_unknown_body_names_nothing() -> None:
    _, streams = _case("too_old_and_new")
    verdict = read_rejections("error at least one label pair is required per stream", streams)
    assert verdict.rejected == []
    assert len(verdict.unconfirmed) == 6


def test_go_time_and_label_parsing() -> None:
    assert _go_time_ns("2026-11-26 22:17:33.24975301 +0000") == 1_795_731_453_249_753_010
    assert _go_time_ns("2026-11-26 22:17:33 +0000") == 1_795_731_453_000_000_000
    assert _go_time_ns("2026-11-26 23:17:33.5 +0100") == 1_795_731_453_500_000_000
    assert parse_labels(r'{a="x\"y", b="\\", c="new\nline", d="\x01é\u00e9"}') == {
        "a": 'x"y', "b": "\\", "c": "new\nline", "d": "\x01éé"}
