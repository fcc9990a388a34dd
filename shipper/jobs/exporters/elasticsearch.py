"""Export a day from Elasticsearch: per index, a point in time read with ``search_after``.

The day is the ``@timestamp`` range ``[00:00, 24:00)`` UTC over the sink's index pattern
(``ecvi-logs-*``), which works for daily indices and data streams alike; each index holding
documents of the day is a unit. Pages are sorted on ``@timestamp`` (as nanoseconds) and
``_shard_doc``, the tiebreaker a point in time provides, so every document comes exactly once even
when thousands share a millisecond.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import orjson

from shipper.archive.days import day_bounds_ns, iso_ns
from shipper.archive.objects import encode_line
from shipper.jobs.exporters.base import Exporter, Unit, unit_name
from shipper.jobs.http import JobHttp

PAGE_SIZE = 5000
KEEP_ALIVE = "5m"
SORT: list[dict[str, Any]] = [
    {"@timestamp": {"order": "asc", "numeric_type": "date_nanos"}},
    {"_shard_doc": "asc"},
]
_JSON = {"Content-Type": "application/json"}

Search = Callable[[dict[str, Any]], dict[str, Any]]


def day_query(day: date) -> dict[str, Any]:
    """The ``range`` query of a UTC day on ``@timestamp``."""
    start, end = day_bounds_ns(day)
    return {"range": {"@timestamp": {"gte": iso_ns(start), "lt": iso_ns(end),
                                     "format": "strict_date_optional_time_nanos"}}}


def search_after_pages(search: Search, pit_id: str, query: dict[str, Any], size: int = PAGE_SIZE,
                       keep_alive: str = KEEP_ALIVE) -> Iterator[dict[str, Any]]:
    """Every hit of ``query`` in the point in time, in sort order; follows the PIT id as it changes."""
    after: list[Any] | None = None
    while True:
        body: dict[str, Any] = {
            "size": size, "query": query, "sort": SORT, "track_total_hits": False,
            "pit": {"id": pit_id, "keep_alive": keep_alive},
        }
        if after is not None:
            body["search_after"] = after
        answer = search(body)
        pit_id = answer.get("pit_id") or pit_id
        hits = answer.get("hits", {}).get("hits") or []
        yield from hits
        if len(hits) < size:
            return
        after = hits[-1]["sort"]


class ElasticsearchExporter(Exporter):
    """Reads days from the indices matching ``pattern``."""

    backend = "elasticsearch"
    expires_by_age = False  # indices go only when deleted (retention enforce or ILM)

    def __init__(self, http: JobHttp, *, pattern: str, page_size: int = PAGE_SIZE) -> None:
        self.http = http
        self.pattern = pattern
        self.page_size = page_size

    def source(self) -> dict[str, Any]:
        return {"backend": "elasticsearch", "endpoint": self.http.base_url, "pattern": self.pattern}

    def _index_counts(self, day: date) -> dict[str, int]:
        body = {"size": 0, "query": day_query(day), "track_total_hits": False,
                "aggs": {"by_index": {"terms": {"field": "_index", "size": 10000}}}}
        resp = self.http.request("POST", f"/{self.pattern}/_search", content=orjson.dumps(body), headers=_JSON,
                                 params={"ignore_unavailable": "true", "allow_no_indices": "true"})
        buckets = orjson.loads(resp.content).get("aggregations", {}).get("by_index", {}).get("buckets") or []
        return {b["key"]: int(b["doc_count"]) for b in buckets}

    def units(self, day: date) -> list[Unit]:
        units = [Unit(unit_name("index", index), {"index": index, "api": "_search (point in time, search_after)",
                                                   "query": day_query(day), "sort": SORT, "size": self.page_size})
                 for index in self._index_counts(day)]
        return sorted(units, key=lambda u: u.name)

    def lines(self, unit: Unit, day: date) -> Iterator[tuple[int, bytes]]:
        index = unit.query["index"]
        resp = self.http.request("POST", f"/{index}/_pit", params={"keep_alive": KEEP_ALIVE})
        pit_id = orjson.loads(resp.content)["id"]
        try:
            for hit in search_after_pages(self._search, pit_id, unit.query["query"], self.page_size):
                ts = int(hit["sort"][0])
                source = orjson.dumps(hit["_source"]).decode()
                yield ts, encode_line({"ts_ns": ts, "line": source, "index": hit["_index"], "id": hit["_id"]})
        finally:
            self.http.request("DELETE", "/_pit", content=orjson.dumps({"id": pit_id}), headers=_JSON,
                              ok=(200, 404))

    def _search(self, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.http.request("POST", "/_search", content=orjson.dumps(body), headers=_JSON)
        answer: dict[str, Any] = orjson.loads(resp.content)
        return answer

    def counts(self, day: date) -> dict[str, int]:
        return {unit_name("index", index): n for index, n in self._index_counts(day).items()}

    def close(self) -> None:
        self.http.close()
