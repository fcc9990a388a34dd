"""Reading a day from Elasticsearch: units per index, point in time, search_after over ties."""

import httpx
import orjson

from shipper.jobs.exporters.elasticsearch import SORT, ElasticsearchExporter, day_query, search_after_pages
from shipper.jobs.http import JobHttp

from ._support import DAY, DAY_START


class FakeEs:
    """Sorted documents behind a point in time: search_after on (timestamp ns, shard doc)."""

    def __init__(self, docs: list[tuple[int, str]]) -> None:
        self.docs = [(ts, i, doc_id) for i, (ts, doc_id) in enumerate(docs)]
        self.bodies: list[dict] = []
        self.closed: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/_pit" and request.method == "DELETE":
            self.closed.append(orjson.loads(request.content)["id"])
            return httpx.Response(200, json={"succeeded": True})
        if path.endswith("/_pit"):
            assert request.url.params["keep_alive"]
            return httpx.Response(200, json={"id": "pit-1"})
        body = orjson.loads(request.content)
        if path == "/logs-*/_search":
            assert body["query"] == day_query(DAY)
            return httpx.Response(200, json={"aggregations": {"by_index": {"buckets": [
                {"key": "logs-2025.01.15", "doc_count": len(self.docs)}, {"key": "logs-2025.01.14", "doc_count": 2}]}}})
        assert path == "/_search" and body["pit"]["id"].startswith("pit-")
        assert body["sort"] == SORT
        self.bodies.append(body)
        after = tuple(body.get("search_after") or (-1, -1))
        rows = [d for d in self.docs if (d[0], d[1]) > after][: body["size"]]
        hits = [{"_index": "logs-2025.01.15", "_id": doc_id, "_source": {"message": doc_id, "n": i},
                 "sort": [ts, i]} for ts, i, doc_id in rows]
        return httpx.Response(200, json={"pit_id": f"pit-{len(self.bodies) + 1}", "hits": {"hits": hits}})


def test_day_query_is_half_open_in_nanoseconds() -> None:
    r = day_query(DAY)["range"]["@timestamp"]
    assert (r["gte"], r["lt"]) == ("2025-01-15T00:00:00.000000000Z", "2025-01-16T00:00:00.000000000Z")


def test_search_after_pages_through_ties_and_follows_the_pit_id() -> None:
    fake = FakeEs([(DAY_START + 1_000_000, f"d{i}") for i in range(23)])

    def search(body: dict) -> dict:
        response = fake.handler(httpx.Request("POST", "http://es/_search", content=orjson.dumps(body)))
        return orjson.loads(response.content)

    hits = list(search_after_pages(search, "pit-1", {"match_all": {}}, size=5))
    assert [h["_id"] for h in hits] == [f"d{i}" for i in range(23)]
    assert [b["pit"]["id"] for b in fake.bodies] == ["pit-1", "pit-2", "pit-3", "pit-4", "pit-5"]
    assert fake.bodies[1]["search_after"] == [DAY_START + 1_000_000, 4]


def test_exporter_units_lines_and_counts() -> None:
    fake = FakeEs([(DAY_START + i * 1_000_000, f"d{i}") for i in range(12)])
    http = JobHttp("http://es.test", what="Elasticsearch", transport=httpx.MockTransport(fake.handler))
    exporter = ElasticsearchExporter(http, pattern="logs-*", page_size=5)
    units = exporter.units(DAY)
    assert [u.name for u in units] == ["index=logs-2025.01.14", "index=logs-2025.01.15"]
    lines = [orjson.loads(line) for _, line in exporter.lines(units[1], DAY)]
    assert len(lines) == 12 and fake.closed == ["pit-1"]
    assert lines[3] == {"ts_ns": DAY_START + 3_000_000, "line": '{"message":"d3","n":3}',
                        "index": "logs-2025.01.15", "id": "d3"}
    assert exporter.counts(DAY) == {"index=logs-2025.01.15": 12, "index=logs-2025.01.14": 2}
