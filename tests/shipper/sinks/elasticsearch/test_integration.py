"""The sink against a real Elasticsearch: daily indices, mappings, replays, rejects and partial 429s."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from elasticsearch import helpers

from shipper.buffer import DiskBuffer
from shipper.event import Event
from shipper.sinks._common.driver import SinkDriver
from shipper.sinks.elasticsearch.config import ElasticsearchSinkConfig
from shipper.sinks.elasticsearch.encoder import iso_ms
from shipper.sinks.elasticsearch.sink import ElasticsearchSink
from tests.services.es import Elasticsearch

from ._support import DAY0_NS, DAY_NS, K8S

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix(es: Elasticsearch) -> Iterator[str]:
    """A fresh index prefix; its daily indices and template are removed afterwards (the test
    distribution has no data stream API to delete a data stream with)."""
    name = f"ecvi-it-{uuid.uuid4().hex[:8]}"
    yield name
    with es.client() as client:
        indices = [i["index"] for i in client.cat.indices(index=f"{name}-*", format="json", h="index")]
        if indices:
            client.indices.delete(index=",".join(indices))
        client.options(ignore_status=(400, 404)).indices.delete_index_template(name=name)


def _config(es: Elasticsearch, **kw: Any) -> ElasticsearchSinkConfig:
    base: dict[str, Any] = {
        "type": "elasticsearch", "inputs": ["app"], "endpoint": es.url,
        "batch": {"max_events": 500, "timeout_secs": 0.05},
        "request": {"concurrency": 2, "retry": {"initial_backoff_secs": 0.05, "max_backoff_secs": 0.2}},
    }
    base.update(kw)
    return ElasticsearchSinkConfig.model_validate(base)


def _events(n: int, days: int = 3, seed: int = 7, **fields: Any) -> list[Event]:
    """``n`` log events spread over ``days`` UTC days, shaped like ``logging_config`` output."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        ts = DAY0_NS + i * (days * DAY_NS // n) + rnd.randrange(1_000_000_000)
        record = {"timestamp": iso_ms(ts), "level": rnd.choice(["debug", "info", "warning", "error"]),
                  "logger": "app.orders", "message": f"order {i} created", "request_id": uuid.uuid4().hex,
                  "user_id": str(rnd.randrange(100)), "company_id": "c-42", "trace_id": uuid.uuid4().hex,
                  "service": "backend", "environment": "test", "version": "1.4.2",
                  "duration_ms": rnd.random() * 100, **fields}
        if i % 97 == 0:
            record["exception"] = {"type": "ValueError", "message": "bad", "stacktrace": "Traceback ...\n"}
        out.append(Event(record, orjson.dumps(record).decode(), ts,
                         {"id": f"cafe{seed}:{i * 180}", "source": "app", "kubernetes": dict(K8S)}))
    return out


async def _ship(sink: ElasticsearchSink, events: list[Event], data_dir: Path) -> SinkDriver:
    """Through the disk buffer and the shared driver, until everything is delivered."""
    buf = DiskBuffer(data_dir / f"buf-{uuid.uuid4().hex[:6]}", sink.name)
    driver = SinkDriver(sink, buf, sink.config, str(data_dir))
    await driver.start()
    for i in range(0, len(events), 1000):
        await buf.append(events[i : i + 1000])
    for _ in range(1200):
        if buf.pending_events == 0:
            break
        await asyncio.sleep(0.05)
    assert buf.pending_events == 0, "the sink did not deliver everything"
    await driver.stop(5)
    return driver


def _dead_letters(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "dead_letter" / "es.ndjson"
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


@pytest.mark.anyio
async def test_daily_indices_read_back_and_replay_adds_nothing(es: Elasticsearch, prefix: str,
                                                         tmp_path: Path) -> None:
    events = _events(3000)
    sink = ElasticsearchSink("es", _config(es, index=f"{prefix}-%Y.%m.%d"), str(tmp_path))
    await _ship(sink, events, tmp_path)
    assert sink.duplicates == 0

    with es.client() as client:
        client.indices.refresh(index=f"{prefix}-*")
        indices = client.cat.indices(index=f"{prefix}-*", format="json", h="index,docs.count")
        assert {i["index"]: int(i["docs.count"]) for i in indices} == {
            f"{prefix}-2025.01.01": 1000, f"{prefix}-2025.01.02": 1000, f"{prefix}-2025.01.03": 1000}
        hits = {h["_id"]: h for h in helpers.scan(client, index=f"{prefix}-*")}
        assert set(hits) == {e.id for e in events}
        for e in events:
            hit = hits[e.id]
            assert hit["_index"] == f"{prefix}-{iso_ms(e.ts_ns)[:10].replace('-', '.')}"
            assert hit["_source"] == {**e.record, "@timestamp": iso_ms(e.ts_ns), "kubernetes": K8S}
        # Timestamps as dates, to the millisecond: a range query on one event's exact time finds it.
        e = events[1234]
        found = client.search(index=f"{prefix}-*", query={"term": {"@timestamp": iso_ms(e.ts_ns)}})
        assert [h["_id"] for h in found["hits"]["hits"]] == [e.id]
        by_request = client.count(index=f"{prefix}-*", query={"term": {"request_id": e.record["request_id"]}})
        assert by_request["count"] == 1
        props = client.indices.get_mapping(index=f"{prefix}-2025.01.02")[f"{prefix}-2025.01.02"]["mappings"][
            "properties"]
        assert props["timestamp"]["type"] == "date" and props["@timestamp"]["type"] == "date"
        assert props["request_id"]["type"] == "keyword"
        assert props["message"]["type"] == "text"
        assert props["exception"]["properties"]["stacktrace"]["type"] == "text"
        assert props["kubernetes"]["properties"]["pod_name"]["type"] == "keyword"

    # The same batch again (a replay after a crash): every create meets its id, nothing is added.
    again = ElasticsearchSink("es", _config(es, index=f"{prefix}-%Y.%m.%d"), str(tmp_path))
    await _ship(again, events, tmp_path)
    assert again.duplicates == 3000
    with es.client() as client:
        client.indices.refresh(index=f"{prefix}-*")
        assert client.count(index=f"{prefix}-*")["count"] == 3000
    assert _dead_letters(tmp_path) == []


@pytest.mark.anyio
async def test_documents_the_mapping_refuses_are_dead_lettered(es: Elasticsearch, prefix: str,
                                                         tmp_path: Path) -> None:
    events = _events(200, days=1)
    for e in events[::20]:
        e.record["timestamp"] = "not-a-date"  # mapped as date by the template
    sink = ElasticsearchSink("es", _config(es, index=f"{prefix}-%Y.%m.%d"), str(tmp_path))
    await _ship(sink, events, tmp_path)

    dead = _dead_letters(tmp_path)
    assert sorted(d["event"]["meta"]["id"] for d in dead) == sorted(e.id for e in events[::20])
    for d in dead:
        assert d["reason"].startswith("document_parsing_exception: ")
        assert "failed to parse field [timestamp] of type [date]" in d["reason"]
        assert "not-a-date" in d["reason"]
    with es.client() as client:
        client.indices.refresh(index=f"{prefix}-*")
        hits = {h["_id"] for h in helpers.scan(client, index=f"{prefix}-*")}
    assert hits == {e.id for e in events} - {e.id for e in events[::20]}


class ThrottlingTransport(httpx.AsyncBaseTransport):
    """Forwards to Elasticsearch, except that chosen documents are answered 429 the first time
    (without reaching the server), as a busy node's write queue would."""

    def __init__(self, throttle: set[str]) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.throttle = set(throttle)
        self.bulk_ids: list[list[str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/_bulk":
            return await self.inner.handle_async_request(request)
        body = await request.aread()
        lines = body.split(b"\n")[:-1]
        pairs = list(zip(lines[0::2], lines[1::2], strict=True))
        ids = [orjson.loads(a)["create"]["_id"] for a, _ in pairs]
        self.bulk_ids.append(ids)
        held = [i for i, doc_id in enumerate(ids) if doc_id in self.throttle]
        self.throttle -= {ids[i] for i in held}
        forward = b"".join(a + b"\n" + d + b"\n" for i, (a, d) in enumerate(pairs) if i not in held)
        answer: dict[str, Any] = {"errors": False, "items": []}
        if forward:
            upstream = await self.inner.handle_async_request(httpx.Request(
                "POST", request.url, headers={"content-type": "application/x-ndjson"}, content=forward))
            answer = orjson.loads(await upstream.aread())
        items = iter(answer["items"])
        throttled = {"create": {"status": 429, "error": {
            "type": "es_rejected_execution_exception", "reason": "rejected execution of write operation"}}}
        merged = [throttled if i in held else next(items) for i in range(len(ids))]
        return httpx.Response(200, content=orjson.dumps({"errors": True, "items": merged}))

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.anyio
async def test_only_throttled_items_are_retried(es: Elasticsearch, prefix: str, tmp_path: Path) -> None:
    events = _events(1000, days=1, seed=11)
    throttled = {e.id for e in events[5::50]}
    proxy = ThrottlingTransport(throttled)
    sink = ElasticsearchSink("es", _config(es, index=f"{prefix}-%Y.%m.%d", request={"concurrency": 1}),
                             str(tmp_path), transport=proxy)
    await _ship(sink, events, tmp_path)

    first = [b for b in proxy.bulk_ids if not set(b) <= throttled]
    retried = [b for b in proxy.bulk_ids if set(b) <= throttled]
    assert sum(len(b) for b in first) == 1000
    assert sorted(i for b in retried for i in b) == sorted(throttled)  # each once, nothing else
    assert sink.duplicates == 0
    with es.client() as client:
        client.indices.refresh(index=f"{prefix}-*")
        assert client.count(index=f"{prefix}-*")["count"] == 1000
        ids = {h["_id"] for h in helpers.scan(client, index=f"{prefix}-*")}
    assert ids == {e.id for e in events}


@pytest.mark.anyio
async def test_data_stream_with_gzip(es: Elasticsearch, prefix: str, tmp_path: Path) -> None:
    events = _events(300, days=2, seed=3)
    sink = ElasticsearchSink("es", _config(es, mode="data_stream", index=prefix, compression="gzip"),
                             str(tmp_path))
    await _ship(sink, events, tmp_path)
    await _ship(ElasticsearchSink("es", sink.config, str(tmp_path)), events[:50], tmp_path)

    with es.client() as client:
        [stream] = client.indices.resolve_index(name=prefix)["data_streams"]
        assert stream["timestamp_field"] == "@timestamp"
        client.indices.refresh(index=prefix)
        assert client.count(index=prefix)["count"] == 300
        hit = client.search(index=prefix, query={"ids": {"values": [events[7].id]}})["hits"]["hits"][0]
        assert hit["_source"]["@timestamp"] == iso_ms(events[7].ts_ns)
        assert hit["_index"].startswith(f".ds-{prefix}-")
    assert _dead_letters(tmp_path) == []


@pytest.mark.anyio
async def test_healthcheck_against_the_server(es: Elasticsearch, prefix: str, tmp_path: Path) -> None:
    sink = ElasticsearchSink("es", _config(es, index=f"{prefix}-%Y.%m.%d"), str(tmp_path))
    await sink.start()
    try:
        await sink.healthcheck()
        await sink.healthcheck()  # installed once; an identical template is left alone
    finally:
        await sink.close()
    with es.client() as client:
        got = client.indices.get_index_template(name=prefix)["index_templates"][0]["index_template"]
    assert got["index_patterns"] == [f"{prefix}-*"]
    assert got["_meta"]["managed_by"] == "ecvi-logs"
