"""Paging through a Loki stream by time, with many entries on one timestamp at page boundaries."""

import random
import re
from datetime import date

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipper.archive.days import day_bounds_ns
from shipper.jobs.exporters.loki import (
    Entry,
    LokiExporter,
    TooManyAtOneTimestamp,
    exact_selector,
    paginate_forward,
    parse_streams,
)
from shipper.jobs.http import JobHttp

from ._support import DAY, DAY_START


class FakeLoki:
    """``query_range`` semantics over a list: entries in [start, end), oldest first, ``limit`` of them.

    Entries sharing a timestamp come in a different order on every call, which Loki does not promise
    to keep stable either.
    """

    def __init__(self, entries: list[Entry], seed: int = 0) -> None:
        self.entries = sorted(entries, key=lambda e: e.ts_ns)
        self.rng = random.Random(seed)
        self.calls: list[tuple[int, int]] = []

    def __call__(self, start: int, end: int, limit: int) -> list[Entry]:
        self.calls.append((start, limit))
        found = [e for e in self.entries if start <= e.ts_ns < end]
        self.rng.shuffle(found)
        found.sort(key=lambda e: e.ts_ns)
        return found[:limit]


def _entries(timestamps: list[int]) -> list[Entry]:
    return [Entry(ts, f"line {i}") for i, ts in enumerate(timestamps)]


def test_identical_timestamps_across_a_page_boundary() -> None:
    # Page size 10; entries 8..17 share one timestamp, so the first page ends inside them.
    stamps = [DAY_START + i for i in range(8)] + [DAY_START + 100] * 10 + [DAY_START + 200 + i for i in range(7)]
    fake = FakeLoki(_entries(stamps))
    got = list(paginate_forward(fake, DAY_START, DAY_START + 10**9, limit=10))
    assert sorted(e.line for e in got) == sorted(e.line for e in fake.entries)
    assert len(got) == len(set(got)) == 25
    assert [e.ts_ns for e in got] == sorted(e.ts_ns for e in got)
    # The second page starts AT the shared timestamp, not after it.
    assert fake.calls[1][0] == DAY_START + 100


def test_more_entries_on_one_timestamp_than_a_page_holds() -> None:
    stamps = [DAY_START] * 37 + [DAY_START + 1] * 3
    fake = FakeLoki(_entries(stamps))
    got = list(paginate_forward(fake, DAY_START, DAY_START + 10, limit=10, max_limit=64))
    assert len(got) == len(set(got)) == 40
    # Grows until one page holds the whole timestamp, then back to the normal page size.
    assert [limit for _, limit in fake.calls] == [10, 20, 40, 10]


def test_gives_up_when_a_timestamp_holds_more_than_the_largest_page() -> None:
    fake = FakeLoki(_entries([DAY_START] * 30))
    with pytest.raises(TooManyAtOneTimestamp, match="more than 16 entries share timestamp"):
        list(paginate_forward(fake, DAY_START, DAY_START + 10, limit=8, max_limit=16))


def test_same_line_and_time_with_different_metadata_are_two_entries() -> None:
    entries = [Entry(DAY_START, "same", (("trace_id", str(i)),)) for i in range(5)] + [Entry(DAY_START + 1, "next")]
    got = list(paginate_forward(FakeLoki(entries), DAY_START, DAY_START + 10, limit=2, max_limit=8))
    assert len(got) == 6


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 30), max_size=120), st.integers(1, 12), st.integers(0, 1000))
def test_every_entry_exactly_once(offsets: list[int], limit: int, seed: int) -> None:
    entries = _entries([DAY_START + o for o in offsets])
    fake = FakeLoki(entries, seed)
    try:
        got = list(paginate_forward(fake, DAY_START, DAY_START + 31, limit=limit, max_limit=128))
    except TooManyAtOneTimestamp:
        assert max(offsets.count(o) for o in offsets) >= 128
        return
    assert sorted(e.line for e in got) == sorted(e.line for e in entries)


def test_exact_selector() -> None:
    sel = exact_selector({"service": 'a"b', "level": "info"}, ["level", "service", "pod"], '{service=~".+"}')
    assert sel == '{service=~".+", level="info", service="a\\"b", pod=""}'
    assert exact_selector({"a": "1"}, ["a"]) == '{a="1"}'
    with pytest.raises(ValueError, match="stream selector"):
        exact_selector({"a": "1"}, [], "service")


def test_parse_categorized_and_plain_answers() -> None:
    categorized = {"encodingFlags": ["categorize-labels"], "result": [{"stream": {"service": "api"}, "values": [
        ["20", "b", {"structuredMetadata": {"trace_id": "t"}}], ["10", "a"]]}]}
    got = parse_streams(categorized)
    assert [(e.ts_ns, e.line, e.metadata) for e in got] == [(10, "a", ()), (20, "b", (("trace_id", "t"),))]
    assert got[0].labels == {"service": "api"}
    # An older Loki mixes metadata into the stream: the known labels tell them apart.
    plain = {"result": [{"stream": {"service": "api", "trace_id": "t"}, "values": [["20", "b"]]}]}
    (e,) = parse_streams(plain, {"service": "api"})
    assert (e.labels, e.metadata) == ({"service": "api"}, (("trace_id", "t"),))


def _loki_transport(day: date) -> httpx.MockTransport:
    start, end = day_bounds_ns(day)
    streams: dict[str, list[tuple[int, str, dict[str, str]]]] = {
        '{level="info", service="api"}': [(start + i, f"info {i}", {"trace_id": f"t{i}"}) for i in range(7)],
        '{service="api", level=""}': [(start + 5, f"plain {i}", {}) for i in range(4)],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/loki/api/v1/series":
            form = dict(httpx.QueryParams(request.content.decode()))
            # A matcher every stream passes, new per exporter: Loki's series cache cannot answer.
            assert re.fullmatch(r'\{service=~"\.\+", ecvi_fresh_[0-9a-f]+=""\}', form["match[]"]), form
            assert form["end"] == str(end - 1)
            return httpx.Response(200, json={"status": "success", "data": [
                {"service": "api", "level": "info"}, {"service": "api"}]})
        if request.url.path == "/loki/api/v1/query_range":
            q = request.url.params
            assert request.headers["X-Loki-Response-Encoding-Flags"] == "categorize-labels"
            assert request.headers["Cache-Control"] == "no-cache"
            assert q["direction"] == "forward"
            sel = q["query"].replace('service=~".+", ', "")
            rows = [r for r in streams[sel] if int(q["start"]) <= r[0] < int(q["end"])][: int(q["limit"])]
            labels = {"service": "api", **({"level": "info"} if "info" in sel else {})}
            values = [[str(ts), line, {"structuredMetadata": md}] if md else [str(ts), line] for ts, line, md in rows]
            return httpx.Response(200, json={"status": "success", "data": {
                "resultType": "streams", "encodingFlags": ["categorize-labels"],
                "result": [{"stream": labels, "values": values}] if rows else []}})
        if request.url.path == "/loki/api/v1/query":
            assert request.url.params["time"] == str(end - 1) and request.headers["Cache-Control"] == "no-cache"
            n = 7 if "info" in request.url.params["query"] else 4
            return httpx.Response(200, json={"data": {"result": [{"metric": {}, "value": [1, str(n)]}]}})
        return httpx.Response(404)

    return httpx.MockTransport(handler)


def test_exporter_lists_streams_and_reads_each_alone() -> None:
    http = JobHttp("http://loki.test", what="Loki", transport=_loki_transport(DAY))
    exporter = LokiExporter(http, selectors=['{service=~".+"}'], page_size=3)
    units = exporter.units(DAY)
    assert len(units) == 2 and all(u.name.startswith("stream=") for u in units)
    by_query = {u.query["query"]: u for u in units}
    info_sel, plain_sel = '{service=~".+", level="info", service="api"}', '{service=~".+", service="api", level=""}'
    assert set(by_query) == {info_sel, plain_sel}
    info = [orjson.loads(line) for _, line in exporter.lines(by_query[info_sel], DAY)]
    assert [r["line"] for r in info] == [f"info {i}" for i in range(7)]
    assert info[3]["labels"] == {"level": "info", "service": "api"} and info[3]["metadata"] == {"trace_id": "t3"}
    plain = list(exporter.lines(by_query[plain_sel], DAY))
    assert len(plain) == 4
    assert sorted(exporter.counts(DAY).values()) == [4, 7]
