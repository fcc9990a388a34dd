"""Reading numbered records back from the real backends."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import orjson

LOKI_PAGE = 5000


def loki_numbers(url: str, selector: str, start_ns: int, end_ns: int) -> Counter[int]:
    """Every ``n`` in the streams matching ``selector``, paging forward through query_range."""
    seen: Counter[int] = Counter()
    keys: set[tuple[int, str]] = set()
    cursor = start_ns
    while True:
        resp = httpx.get(f"{url}/loki/api/v1/query_range", params={
            "query": selector, "start": str(cursor), "end": str(end_ns), "limit": str(LOKI_PAGE),
            "direction": "forward"}, timeout=60)
        resp.raise_for_status()
        page = [(int(ts), line) for s in resp.json()["data"]["result"] for ts, line in s["values"]]
        fresh = [e for e in page if e not in keys]
        for ts, line in fresh:
            keys.add((ts, line))
            seen[int(orjson.loads(line)["n"])] += 1
        if len(page) < LOKI_PAGE or not fresh:
            return seen
        cursor = max(ts for ts, _ in page)  # inclusive: the overlap is removed by ``keys``


def es_numbers(url: str, index: str) -> Counter[int]:
    """Every ``n`` in the indices matching ``index`` (scrolled), counting duplicates."""
    seen: Counter[int] = Counter()
    httpx.post(f"{url}/{index}/_refresh", timeout=60)
    resp = httpx.post(f"{url}/{index}/_search", params={"scroll": "2m"},
                      json={"size": 5000, "_source": ["n"], "query": {"match_all": {}}}, timeout=60)
    if resp.status_code == 404:
        return seen
    resp.raise_for_status()
    body: dict[str, Any] = resp.json()
    while body["hits"]["hits"]:
        for hit in body["hits"]["hits"]:
            seen[int(hit["_source"]["n"])] += 1
        body = httpx.post(f"{url}/_search/scroll", json={"scroll": "2m", "scroll_id": body["_scroll_id"]},
                          timeout=60).json()
    return seen
