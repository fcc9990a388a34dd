"""Export a day from Loki: list the day's streams, then page through each one forward in time.

Streams come from ``/loki/api/v1/series`` over the day for the configured selectors; each is read
with a selector that matches it alone (its labels, plus ``name=""`` for label names other streams
have). Entries come from ``query_range`` with ``direction=forward`` and the categorize-labels
encoding, so structured metadata is told apart from stream labels.

Loki caches answers, and an old day's answer stays cached: the late-line check would never see a
stream that appeared in that day after it was archived. Queries send ``Cache-Control: no-cache``
(honoured for ``query`` and ``query_range``); the series API ignores it and keys its cache by the
matchers (``cache_series_results``, on by default), so each exporter adds a matcher every stream
passes (``ecvi_fresh_<nonce>=""``: a label no stream has) that is new for every run.

Paging by time has one trap: a page can end in the middle of many entries sharing a timestamp.
The next page starts *at* that timestamp (not after it), and the entries of that timestamp already
seen are skipped; a page holding nothing but one timestamp is asked again with a larger limit.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson

from shipper.archive.days import day_bounds_ns
from shipper.archive.objects import encode_line
from shipper.errors import BackendError
from shipper.jobs.exporters.base import Exporter, Unit
from shipper.jobs.http import JobHttp
from shipper.sinks.loki.labels import escape_label_value, format_labels

#: Loki's default ``max_entries_limit_per_query``.
MAX_LIMIT = 5000
NO_CACHE = {"Cache-Control": "no-cache"}
CATEGORIZE = {"X-Loki-Response-Encoding-Flags": "categorize-labels", **NO_CACHE}


def fresh_selector(selector: str, nonce: str) -> str:
    """``selector`` plus ``<nonce>=""``, which every stream matches: the same streams, a new cache key."""
    body = selector.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise ValueError(f"{selector!r} is not a stream selector ({{name=\"value\", ...}})")
    return f'{body[:-1].rstrip()}, {nonce}=""}}'



@dataclass(frozen=True, slots=True)
class Entry:
    ts_ns: int
    line: str
    metadata: tuple[tuple[str, str], ...] = ()
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


Fetch = Callable[[int, int, int], list[Entry]]


class TooManyAtOneTimestamp(BackendError):
    """More entries share one timestamp than the largest page Loki returns."""


def paginate_forward(fetch: Fetch, start_ns: int, end_ns: int, limit: int = MAX_LIMIT,
                     max_limit: int = MAX_LIMIT) -> Iterator[Entry]:
    """Every entry in ``[start_ns, end_ns)``, oldest first, each exactly once.

    ``fetch(start, end, limit)`` returns up to ``limit`` entries from ``start`` (inclusive) in
    time order, as ``query_range`` does; the order among entries with the same timestamp need not be
    stable between calls.
    """
    boundary_ts: int | None = None
    seen_at_boundary: set[Entry] = set()
    page_limit = limit
    while start_ns < end_ns:
        page = fetch(start_ns, end_ns, page_limit)
        yield from (e for e in page if not (e.ts_ns == boundary_ts and e in seen_at_boundary))
        if len(page) < page_limit:
            return
        last = page[-1].ts_ns
        if last != boundary_ts:
            boundary_ts, seen_at_boundary = last, set()
        seen_at_boundary.update(e for e in page if e.ts_ns == last)
        if page[0].ts_ns == last == start_ns:
            # The whole page is the timestamp it started at: only a larger page gets past it.
            if page_limit >= max_limit:
                raise TooManyAtOneTimestamp(
                    f"more than {max_limit} entries share timestamp {last} ns; raise Loki's "
                    "max_entries_limit_per_query and --page-size to export them")
            page_limit = min(page_limit * 2, max_limit)
        else:
            page_limit = limit
        start_ns = last


def exact_selector(labels: dict[str, str], absent: list[str], base: str | None = None) -> str:
    """A selector matching the stream with exactly ``labels`` among streams of the same ``base``."""
    matchers = [f'{k}="{escape_label_value(v)}"' for k, v in sorted(labels.items())]
    matchers += [f'{name}=""' for name in sorted(set(absent) - set(labels))]
    if base:
        inner = base.strip()
        if not (inner.startswith("{") and inner.endswith("}")):
            raise ValueError(f"selector {base!r} must be a stream selector such as {{service=~\".+\"}}")
        if inner[1:-1].strip():
            matchers.insert(0, inner[1:-1].strip())
    return "{" + ", ".join(matchers) + "}"


def parse_streams(data: dict[str, Any], stream_labels: dict[str, str] | None = None) -> list[Entry]:
    """Entries of a ``query_range`` answer (``data``), sorted by time.

    With the categorize-labels encoding, metadata is in each value's third element. An older Loki
    mixes structured metadata into the stream's labels: given the stream's real labels, the rest
    is metadata.
    """
    categorized = "categorize-labels" in (data.get("encodingFlags") or [])
    out: list[Entry] = []
    for stream in data.get("result") or []:
        labels = dict(stream.get("stream") or {})
        extra: dict[str, str] = {}
        if not categorized and stream_labels is not None:
            extra = {k: v for k, v in labels.items() if k not in stream_labels}
            labels = {k: v for k, v in labels.items() if k in stream_labels}
        for value in stream.get("values") or []:
            meta = dict(extra)
            if categorized and len(value) > 2 and isinstance(value[2], dict):
                meta.update(value[2].get("structuredMetadata") or {})
            out.append(Entry(int(value[0]), value[1], tuple(sorted(meta.items())), labels))
    out.sort(key=lambda e: e.ts_ns)
    return out


class LokiExporter(Exporter):
    """Reads days from one Loki (one tenant)."""

    backend = "loki"

    def __init__(self, http: JobHttp, *, selectors: list[str], tenant: str | None = None,
                 page_size: int = MAX_LIMIT, max_page_size: int = MAX_LIMIT) -> None:
        if not selectors:
            raise ValueError("at least one stream selector is needed")
        self.http = http
        self.selectors = selectors
        self.tenant = tenant
        self.page_size = min(page_size, max_page_size)
        self.max_page_size = max_page_size
        self._series: dict[date, list[tuple[dict[str, str], str]]] = {}
        self._nonce = f"ecvi_fresh_{time.time_ns():x}"

    def source(self) -> dict[str, Any]:
        return {"backend": "loki", "endpoint": self.http.base_url, "tenant": self.tenant,
                "selectors": self.selectors}

    def _streams(self, day: date) -> list[tuple[dict[str, str], str]]:
        """``(labels, selector)`` of every stream of the day, by label string."""
        if day in self._series:
            return self._series[day]
        start, end = day_bounds_ns(day)
        found: dict[str, tuple[dict[str, str], str]] = {}
        for selector in self.selectors:
            resp = self.http.request("POST", "/loki/api/v1/series", data={
                "match[]": fresh_selector(selector, self._nonce), "start": str(start), "end": str(end - 1)})
            for labels in resp.json().get("data") or []:
                found.setdefault(format_labels(labels.items()), (dict(labels), selector))
        names = sorted({n for labels, _ in found.values() for n in labels})
        streams = [(labels, exact_selector(labels, names, base)) for _, (labels, base) in sorted(found.items())]
        self._series[day] = streams
        return streams

    def units(self, day: date) -> list[Unit]:
        start, end = day_bounds_ns(day)
        units = []
        for labels, selector in self._streams(day):
            digest = hashlib.sha256(format_labels(labels.items()).encode()).hexdigest()[:16]
            units.append(Unit(f"stream={digest}", {
                "api": "/loki/api/v1/query_range", "query": selector, "start": str(start), "end": str(end),
                "direction": "forward", "limit": self.page_size, "tenant": self.tenant, "labels": labels,
            }))
        return sorted(units, key=lambda u: u.name)

    def _fetch(self, selector: str, labels: dict[str, str]) -> Fetch:
        def fetch(start: int, end: int, limit: int) -> list[Entry]:
            resp = self.http.request("GET", "/loki/api/v1/query_range", headers=CATEGORIZE, params={
                "query": selector, "start": str(start), "end": str(end), "limit": str(limit),
                "direction": "forward"})
            return parse_streams(orjson.loads(resp.content).get("data") or {}, labels)
        return fetch

    def lines(self, unit: Unit, day: date) -> Iterator[tuple[int, bytes]]:
        start, end = day_bounds_ns(day)
        labels = unit.query["labels"]
        fetch = self._fetch(unit.query["query"], labels)
        for e in paginate_forward(fetch, start, end, self.page_size, self.max_page_size):
            yield e.ts_ns, encode_line({"ts_ns": e.ts_ns, "line": e.line, "labels": e.labels or labels,
                                        "metadata": dict(e.metadata)})

    def counts(self, day: date) -> dict[str, int]:
        """Per stream: ``count_over_time`` over the day, evaluated at its last nanosecond."""
        end = day_bounds_ns(day)[1]
        out: dict[str, int] = {}
        for unit in self.units(day):
            resp = self.http.request("GET", "/loki/api/v1/query", headers=NO_CACHE, params={
                "query": f"sum(count_over_time({unit.query['query']}[86400s]))", "time": str(end - 1)})
            result = resp.json().get("data", {}).get("result") or []
            out[unit.name] = int(float(result[0]["value"][1])) if result else 0
        return out

    def close(self) -> None:
        self.http.close()
