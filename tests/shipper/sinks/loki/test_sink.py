"""LokiSink over httpx.MockTransport: headers, auth, and how each answer becomes an outcome."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cramjam
import httpx
import orjson
import pytest

from shipper.buffer import DiskBuffer
from shipper.event import Event
from shipper.sinks._common.driver import SinkDriver
from shipper.sinks._common.outcome import PermanentSinkError, SendOutcome, TransientSinkError
from shipper.sinks.loki.config import LokiSinkConfig
from shipper.sinks.loki.sink import LokiSink
from tests.shipper.sinks.loki._logproto import decode

Handler = Callable[[httpx.Request], httpx.Response]
NOW = 1_790_000_000 * 10**9


def _config(**kw: Any) -> LokiSinkConfig:
    base: dict[str, Any] = {"type": "loki", "inputs": ["app"], "endpoint": "http://loki.test:3100",
                            "labels": {"service": "{{ service }}"}}
    base.update(kw)
    return LokiSinkConfig.model_validate(base)


def _sink(handler: Handler, **kw: Any) -> LokiSink:
    return LokiSink("loki", _config(**kw), "", transport=httpx.MockTransport(handler))


def _events(n: int, service: str = "api") -> list[Event]:
    out = []
    for i in range(n):
        rec = {"service": service, "message": f"m{i}", "request_id": f"r{i}"}
        out.append(Event(rec, orjson.dumps(rec).decode(), NOW + i * 1_000_000))
    return out


async def _send(sink: LokiSink, events: list[Event]) -> SendOutcome:
    try:
        return await sink.send(events)
    finally:
        await sink.close()


@pytest.mark.anyio
async def test_push_request_headers_and_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    sink = _sink(handler, tenant_id="team-a")
    events = _events(3)
    out = await _send(sink, events)

    [req] = seen
    assert (req.method, str(req.url)) == ("POST", "http://loki.test:3100/loki/api/v1/push")
    assert req.headers["Content-Type"] == "application/x-protobuf"
    assert "Content-Encoding" not in req.headers
    assert req.headers["X-Scope-OrgID"] == "team-a"
    body = decode(bytes(cramjam.snappy.decompress_raw(req.content)))
    assert [e.line for e in body.streams[0].entries] == [e.raw for e in events]
    assert out.retry == [] and out.rejected == [] and out.sent_bytes == len(req.content)


@pytest.mark.anyio
async def test_json_encoding_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    await _send(_sink(handler, encoding="json"), _events(2))
    assert seen[0].headers["Content-Type"] == "application/json"
    assert seen[0].headers["Content-Encoding"] == "gzip"
    doc = orjson.loads(bytes(cramjam.gzip.decompress(seen[0].content)))
    assert doc["streams"][0]["stream"] == {"service": "api"}


@pytest.mark.parametrize(("auth", "expected"), [
    ({"strategy": "basic", "user": "u", "password": "p@ss"}, "Basic " + base64.b64encode(b"u:p@ss").decode()),
    ({"strategy": "bearer", "token": "s3cret"}, "Bearer s3cret"),
])
@pytest.mark.anyio
async def test_auth_headers(auth: dict[str, str], expected: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    await _send(_sink(handler, auth=auth), _events(1))
    assert seen[0].headers["Authorization"] == expected


@pytest.mark.anyio
async def test_429_is_transient_with_retry_after() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "7"}, text="Ingestion rate limit exceeded for user fake")

    with pytest.raises(TransientSinkError) as err:
        await _send(_sink(handler), _events(2))
    assert err.value.retry_after == 7.0
    assert err.value.reason.startswith("http_429: ") and "rate limit exceeded" in err.value.reason


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
@pytest.mark.anyio
async def test_server_errors_are_transient(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text="ingester unavailable")

    with pytest.raises(TransientSinkError) as err:
        await _send(_sink(handler), _events(1))
    assert err.value.retry_after is None
    assert f"http_{status}" in err.value.reason


@pytest.mark.parametrize(("status", "words"), [
    (401, "authentication failed"), (403, "authentication failed"), (404, "not a Loki push endpoint"),
    (422, "Loki refused"),
])
@pytest.mark.anyio
async def test_client_errors_are_permanent_with_a_clear_message(
    status: int, words: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text="no org id" if status == 401 else "nope")

    with pytest.raises(PermanentSinkError) as err:
        await _send(_sink(handler), _events(1))
    assert words in err.value.reason
    assert "http://loki.test:3100/loki/api/v1/push" in err.value.reason or status == 422


@pytest.mark.anyio
async def test_400_rejects_named_entries_and_resends_the_unconfirmed() -> None:
    events = _events(3)
    old = events[1]
    old.ts_ns = NOW - 200 * 3600 * 10**9
    # Loki prints the entry's time cut to the second.
    stamp = datetime.fromtimestamp(old.ts_ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = (f"entry for stream '{{service=\"api\", service_name=\"api\"}}' has timestamp too old: {stamp}, "
            "oldest acceptable timestamp is: 2026-09-14T00:00:00Z\n")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, text=body)

    out = await _send(_sink(handler), events)
    assert [(e.raw, r.split(":")[0]) for e, r in out.rejected] == [(old.raw, "greater_than_max_sample_age")]
    assert sorted(e.raw for e in out.retry) == sorted([events[0].raw, events[2].raw])


@pytest.mark.anyio
async def test_400_that_names_nothing_rejects_the_batch() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, text="couldn't parse push request: snappy: corrupt input")

    with pytest.raises(PermanentSinkError) as err:
        await _send(_sink(handler), _events(2))
    assert err.value.reason == "http_400: Loki rejected the request: couldn't parse push request: snappy: corrupt input"


@pytest.mark.anyio
async def test_413_halves_the_batch_until_it_fits() -> None:
    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        n = len(decode(bytes(cramjam.snappy.decompress_raw(request.content))).streams[0].entries)
        sizes.append(n)
        big = any(len(e.line) > 1000 for e in decode(bytes(cramjam.snappy.decompress_raw(request.content)))
                  .streams[0].entries)
        return httpx.Response(413, text="request entity too large") if n > 2 or big else httpx.Response(204)

    events = _events(8)
    huge = {"service": "api", "message": "x" * 5000}
    events.append(Event(huge, orjson.dumps(huge).decode(), NOW + 10**9))
    out = await _send(_sink(handler), events)
    assert out.retry == []
    assert [e.raw for e, _ in out.rejected] == [events[-1].raw]
    assert out.rejected[0][1].startswith("http_413: ")
    assert sizes[0] == 9 and sum(n for n in sizes if n <= 2) >= 8


@pytest.mark.anyio
async def test_healthcheck() -> None:
    answers = {"/ready": httpx.Response(503, text="Ingester not ready: waiting for 15s after being ready")}

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.get(request.url.path, httpx.Response(404))

    async def check(sink: LokiSink) -> None:
        try:
            await sink.healthcheck()
        finally:
            await sink.close()

    with pytest.raises(TransientSinkError, match="not ready \\(HTTP 503\\): Ingester not ready"):
        await check(_sink(handler))
    answers["/ready"] = httpx.Response(200, text="ready")
    await check(_sink(handler))
    # Behind a gateway that hides /ready, the build info answers instead.
    del answers["/ready"]
    answers["/loki/api/v1/status/buildinfo"] = httpx.Response(200, json={"version": "3.7.6"})
    await check(_sink(handler))


@pytest.mark.anyio
async def test_healthcheck_unreachable_says_where() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    async def check(sink: LokiSink) -> None:
        try:
            await sink.healthcheck()
        finally:
            await sink.close()

    with pytest.raises(TransientSinkError, match=re.escape("cannot reach Loki at http://loki.test:3100/ready")):
        await check(_sink(handler))


def test_event_size_counts_the_line_and_metadata() -> None:
    sink = LokiSink("loki", _config(), "")
    ev = _events(1)[0]
    assert len(ev.raw) < sink.event_size(ev) < len(ev.raw) + 400


@pytest.mark.anyio
async def test_driver_waits_as_loki_tells_on_429(tmp_path: Path) -> None:
    """Through DiskBuffer + SinkDriver: a 429 with Retry-After: 1 holds the retry back a second."""
    times: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        times.append(asyncio.get_running_loop().time())
        if len(times) == 1:
            return httpx.Response(429, headers={"Retry-After": "1"}, text="slow down")
        return httpx.Response(204)

    sink = _sink(handler, healthcheck=False, batch={"timeout_secs": 0.05},
                 request={"retry": {"initial_backoff_secs": 0.01, "max_backoff_secs": 5}})

    buf = DiskBuffer(tmp_path / "buf", "loki")
    drv = SinkDriver(sink, buf, sink.config, str(tmp_path))
    await drv.start()
    await buf.append(_events(5))
    for _ in range(300):
        if buf.pending_events == 0:
            break
        await asyncio.sleep(0.01)
    pending = buf.pending_events
    await drv.stop(1)
    assert pending == 0
    assert len(times) == 2
    assert times[1] - times[0] >= 0.99
