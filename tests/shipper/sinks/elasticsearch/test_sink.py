"""The sink against an in-memory Elasticsearch: template first, auth, healthcheck, partial retries."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from shipper.buffer import DiskBuffer
from shipper.sinks._common.driver import SinkDriver
from shipper.sinks._common.outcome import PermanentSinkError, TransientSinkError
from shipper.sinks.elasticsearch.sink import ElasticsearchSink

from ._support import DOCUMENT_PARSING, THROTTLED, UNAVAILABLE, FakeElasticsearch, make_config, make_event

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def fake() -> FakeElasticsearch:
    return FakeElasticsearch()


def _sink(tmp_path: Path, backend: FakeElasticsearch | Handler, **cfg: Any) -> ElasticsearchSink:
    """A sink whose requests go to ``backend`` (an in-memory Elasticsearch or one handler)."""
    handler = backend.handle if isinstance(backend, FakeElasticsearch) else backend
    return ElasticsearchSink("es", make_config(**cfg), str(tmp_path), transport=httpx.MockTransport(handler))


async def _started(sink: ElasticsearchSink) -> ElasticsearchSink:
    await sink.start()
    return sink


def _paths(es: FakeElasticsearch) -> list[str]:
    return [f"{r.method} {r.url.path}" for r in es.requests]


@pytest.mark.anyio
async def test_template_is_installed_before_the_first_write_and_once(fake: FakeElasticsearch,
                                                                    tmp_path: Path) -> None:
    sink = await _started(_sink(tmp_path, fake))
    await asyncio.gather(sink.send([make_event(0)]), sink.send([make_event(1)]))
    await sink.send([make_event(2)])
    await sink.close()
    assert _paths(fake) == ["GET /_index_template/ecvi-logs", "PUT /_index_template/ecvi-logs",
                            "POST /_bulk", "POST /_bulk", "POST /_bulk"]
    assert fake.templates["ecvi-logs"]["index_patterns"] == ["ecvi-logs-*"]
    assert len(fake.docs) == 3


@pytest.mark.anyio
async def test_identical_template_is_left_alone(fake: FakeElasticsearch, tmp_path: Path) -> None:
    for _ in range(2):  # two shipper processes, one after the other
        sink = await _started(_sink(tmp_path, fake, mode="data_stream"))
        await sink.send([make_event(0)])
        await sink.close()
    assert [p for p in _paths(fake) if "template" in p] == [
        "GET /_index_template/ecvi-logs", "PUT /_index_template/ecvi-logs", "GET /_index_template/ecvi-logs"]
    assert fake.templates["ecvi-logs"]["data_stream"] == {}


@pytest.mark.anyio
async def test_no_template_when_disabled(fake: FakeElasticsearch, tmp_path: Path) -> None:
    sink = await _started(_sink(tmp_path, fake, install_template=False))
    await sink.send([make_event(0)])
    await sink.close()
    assert _paths(fake) == ["POST /_bulk"]


@pytest.mark.anyio
async def test_template_refused_holds_events_back(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path != "/_bulk"
        return httpx.Response(403, json={"error": {"type": "security_exception", "reason": "action "
                              "[indices:admin/index_template/put] is unauthorized"}})

    sink = await _started(_sink(tmp_path, handler))
    with pytest.raises(TransientSinkError, match="grant manage_index_templates or set install_template"):
        await sink.send([make_event(0)])
    await sink.close()


@pytest.mark.anyio
@pytest.mark.parametrize(("cfg", "expected"), [
    ({"api_key": "id1:k"}, "ApiKey " + base64.b64encode(b"id1:k").decode()),
    ({"auth": {"user": "elastic", "password": "pw"}}, "Basic " + base64.b64encode(b"elastic:pw").decode()),
    ({"auth": {"strategy": "bearer", "token": "t0k"}}, "Bearer t0k"),
])
async def test_credentials_are_sent(fake: FakeElasticsearch, tmp_path: Path, cfg: dict, expected: str) -> None:
    sink = await _started(_sink(tmp_path, fake, **cfg))
    await sink.send([make_event(0)])
    await sink.close()
    assert {r.headers["authorization"] for r in fake.requests} == {expected}


@pytest.mark.anyio
async def test_healthcheck(fake: FakeElasticsearch, tmp_path: Path) -> None:
    sink = await _started(_sink(tmp_path, fake))
    await sink.healthcheck()
    fake.health = "red"
    sink2 = await _started(_sink(tmp_path, fake))
    with pytest.raises(TransientSinkError, match="cluster health is red"):
        await sink2.healthcheck()
    await sink.close()
    await sink2.close()
    assert "PUT /_index_template/ecvi-logs" in _paths(fake)  # the healthcheck installs it


@pytest.mark.anyio
async def test_healthcheck_explains_auth_and_network_failures(tmp_path: Path) -> None:
    def unauthorized(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"type": "security_exception",
                                                   "reason": "missing authentication credentials"}})

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused")

    async def check(handler: Handler) -> None:
        sink = await _started(_sink(tmp_path, handler, api_key="id:secret-value"))
        try:
            await sink.healthcheck()
        finally:
            await sink.close()

    with pytest.raises(PermanentSinkError, match="authentication failed: security_exception") as info:
        await check(unauthorized)
    assert "secret-value" not in str(info.value)
    with pytest.raises(TransientSinkError, match=r"cannot reach http://es\.test:9200: ConnectError"):
        await check(down)


@pytest.mark.anyio
async def test_driver_retries_only_failed_items_and_dead_letters_rejects(fake: FakeElasticsearch,
                                                                         tmp_path: Path) -> None:
    events = [make_event(n) for n in range(50)]
    fake.fail_once = {"f00d:300": THROTTLED, "f00d:1700": UNAVAILABLE, "f00d:4200": THROTTLED}
    bad = make_event(99, timestamp="not-a-date")
    fake.fail_once[bad.id] = DOCUMENT_PARSING
    fake.fail_once["f00d:9999999"] = DOCUMENT_PARSING  # never sent: stays

    sink = _sink(tmp_path, fake, batch={"max_events": 100, "timeout_secs": 0.01},
                 request={"concurrency": 1, "retry": {"initial_backoff_secs": 0.01, "max_backoff_secs": 0.02}})
    buf = DiskBuffer(tmp_path / "buf", "es")
    driver = SinkDriver(sink, buf, sink.config, str(tmp_path))
    await driver.start()
    await buf.append([*events, bad])
    for _ in range(500):
        if buf.pending_events == 0:
            break
        await asyncio.sleep(0.01)
    await driver.stop(1)

    assert fake.bulk_ids[0] == [e.id for e in [*events, bad]]
    assert fake.bulk_ids[1:] == [["f00d:300", "f00d:1700", "f00d:4200"]]
    assert sorted(i for _, i in fake.docs) == sorted(e.id for e in events)
    [dead] = [orjson.loads(x) for x in (tmp_path / "dead_letter" / "es.ndjson").read_bytes().splitlines()]
    assert dead["event"]["record"]["timestamp"] == "not-a-date"
    assert dead["reason"].startswith("document_parsing_exception: [1:54] failed to parse field [timestamp]")
