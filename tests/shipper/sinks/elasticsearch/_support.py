"""Events and recorded Elasticsearch answers shared by the sink's tests."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from shipper.event import Event
from shipper.sinks.elasticsearch.config import ElasticsearchSinkConfig
from tests.factories import event

# 2025-01-01T00:00:00Z
DAY0_NS = 1_735_689_600 * 1_000_000_000
DAY_NS = 86_400 * 1_000_000_000
K8S = {"namespace": "prod", "pod_name": "backend-7d9f-abcde", "container_name": "api",
       "container_id": "f" * 64}


def make_event(n: int, ts_ns: int | None = None, **fields: Any) -> Event:
    """A ``logging_config``-shaped event with a file-source id and kubernetes metadata."""
    ts = DAY0_NS + n * 1_000_000 if ts_ns is None else ts_ns
    record = {"timestamp": "2025-01-01T00:00:00.000Z", "level": "info", "logger": "app.orders",
              "message": f"order {n} created", "request_id": f"req-{n}", "user_id": "u-1",
              "service": "backend", "environment": "test", "version": "1.0.0", **fields}
    return event(record, ts_ns=ts, meta={"id": f"f00d:{n * 100}", "source": "app", "kubernetes": K8S})


def make_config(**kw: Any) -> ElasticsearchSinkConfig:
    base: dict[str, Any] = {"type": "elasticsearch", "inputs": ["app"], "endpoint": "http://es.test:9200",
                            "healthcheck": False}
    base.update(kw)
    return ElasticsearchSinkConfig.model_validate(base)


def item(status: int, error: dict[str, Any] | None = None) -> dict[str, Any]:
    inner: dict[str, Any] = {"status": status}
    if error:
        inner["error"] = error
    return {"create": inner}


CREATED = item(201)
CONFLICT = item(409, {
    "type": "version_conflict_engine_exception",
    "reason": "[f00d:100]: version conflict, document already exists (current version [1])",
    "index_uuid": "QecS1GbqTw6iwCxT7Zq0RA", "shard": "0", "index": "ecvi-logs-2025.01.01"})
THROTTLED = item(429, {
    "type": "es_rejected_execution_exception",
    "reason": "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, "
              "replica_bytes=0, all_bytes=0, coordinating_operation_bytes=104857600, "
              "max_coordinating_and_primary_bytes=53687091]"})
UNAVAILABLE = item(503, {
    "type": "unavailable_shards_exception",
    "reason": "[ecvi-logs-2025.01.01][0] primary shard is not active Timeout: [1m], request: "
              "[BulkShardRequest [[ecvi-logs-2025.01.01][0]] containing [2] requests]"})
MAPPER_PARSING = item(400, {
    "type": "mapper_parsing_exception",
    "reason": "failed to parse field [status_code] of type [long] in document with id 'f00d:300'. "
              "Preview of field's value: 'abc'",
    "caused_by": {"type": "illegal_argument_exception", "reason": 'For input string: "abc"'}})
DOCUMENT_PARSING = item(400, {
    "type": "document_parsing_exception",
    "reason": "[1:54] failed to parse field [timestamp] of type [date] in document with id 'f00d:400'. "
              "Preview of field's value: 'not-a-date'",
    "caused_by": {"type": "illegal_argument_exception",
                  "reason": "failed to parse date field [not-a-date] with format "
                            "[strict_date_optional_time||epoch_millis]",
                  "caused_by": {"type": "date_time_parse_exception",
                                "reason": "Failed to parse with all enclosed parsers"}}})
FIELD_LIMIT = item(400, {
    "type": "illegal_argument_exception",
    "reason": "Limit of total fields [1000] has been exceeded while adding new fields [3]"})


def bulk_answer(*items: dict[str, Any]) -> bytes:
    """A ``_bulk`` answer filtered like the sink asks (``errors`` and each item's status/error)."""
    errors = any(next(iter(i.values()))["status"] >= 300 for i in items)
    return orjson.dumps({"errors": errors, "items": list(items)})


class FakeElasticsearch:
    """An in-memory Elasticsearch behind ``httpx.MockTransport``: bulk create, templates, health.

    ``fail_once`` maps document ids to an item answer returned (without indexing) the first time
    the id is seen; ``requests`` records every request.
    """

    def __init__(self, health: str = "green") -> None:
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}
        self.templates: dict[str, dict[str, Any]] = {}
        self.fail_once: dict[str, dict[str, Any]] = {}
        self.health = health
        self.requests: list[httpx.Request] = []
        self.bulk_ids: list[list[str]] = []

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/":
            return httpx.Response(200, json={"cluster_name": "fake", "version": {"number": "8.19.21"}})
        if path == "/_cluster/health":
            return httpx.Response(200, json={"status": self.health})
        if path.startswith("/_index_template/"):
            name = path.rsplit("/", 1)[1]
            if request.method == "PUT":
                self.templates[name] = orjson.loads(request.content)
                return httpx.Response(200, json={"acknowledged": True})
            if name not in self.templates:
                reason = f"index template matching [{name}] not found"
                return httpx.Response(404, json={"error": {"type": "resource_not_found_exception",
                                                           "reason": reason}})
            return httpx.Response(200, json={"index_templates": [
                {"name": name, "index_template": self.templates[name]}]})
        if path == "/_bulk":
            return self._bulk(request.content)
        return httpx.Response(404, json={"error": {"type": "no_handler", "reason": path}})

    def _bulk(self, body: bytes) -> httpx.Response:
        lines = [orjson.loads(x) for x in body.split(b"\n") if x]
        items = []
        ids = []
        for action, doc in zip(lines[0::2], lines[1::2], strict=True):
            meta = action["create"]
            key = (meta["_index"], meta["_id"])
            ids.append(meta["_id"])
            failure = self.fail_once.pop(meta["_id"], None)
            if failure is not None:
                items.append(failure)
            elif key in self.docs:
                items.append(CONFLICT)
            else:
                self.docs[key] = doc
                items.append(CREATED)
        self.bulk_ids.append(ids)
        return httpx.Response(200, content=bulk_answer(*items))
