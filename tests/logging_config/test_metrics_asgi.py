"""MetricsMiddleware with FastAPI through httpx's ASGITransport: labels, latency, in-progress."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from logging_config.metrics import HTTP_DURATION_BUCKETS, UNMATCHED_ENDPOINT, MetricsMiddleware, mount_metrics

pytestmark = pytest.mark.anyio


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def make_app() -> tuple[FastAPI, asyncio.Event, asyncio.Event]:
    app = FastAPI()
    app.add_middleware(MetricsMiddleware)
    mount_metrics(app)
    entered, release = asyncio.Event(), asyncio.Event()

    @app.get("/api/v1/companies/{company_id}")
    async def company(company_id: str) -> dict[str, str]:
        if company_id == "missing":
            raise HTTPException(404)
        return {"id": company_id}

    @app.get("/api/v1/boom")
    async def boom() -> None:
        raise RuntimeError("handler bug")

    @app.get("/api/v1/wait")
    async def wait() -> dict[str, str]:
        entered.set()
        await release.wait()
        return {}

    return app, entered, release


def _client(app: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_requests_are_counted_by_route_template_not_raw_path() -> None:
    app, _, _ = make_app()
    labels = {"method": "GET", "endpoint": "/api/v1/companies/{company_id}"}
    ok, missing = _value("http_requests_total", **labels, status_code="200"), _value(
        "http_requests_total", **labels, status_code="404")
    async with _client(app) as client:
        for company in ("a1", "b2", "c3"):
            assert (await client.get(f"/api/v1/companies/{company}")).status_code == 200
        assert (await client.get("/api/v1/companies/missing")).status_code == 404
    assert _value("http_requests_total", **labels, status_code="200") == ok + 3
    assert _value("http_requests_total", **labels, status_code="404") == missing + 1
    assert _value("http_requests_total", method="GET", endpoint="/api/v1/companies/a1", status_code="200") == 0


async def test_unknown_paths_share_one_series() -> None:
    app, _, _ = make_app()
    before = _value("http_requests_total", method="GET", endpoint=UNMATCHED_ENDPOINT, status_code="404")
    async with _client(app) as client:
        for path in ("/wp-admin", "/.env", "/api/v1/nothing/here"):
            assert (await client.get(path)).status_code == 404
    assert _value("http_requests_total", method="GET", endpoint=UNMATCHED_ENDPOINT, status_code="404") == before + 3
    assert _value("http_requests_total", method="GET", endpoint="/wp-admin", status_code="404") == 0


async def test_an_app_that_raises_counts_as_500_and_is_timed() -> None:
    app, _, _ = make_app()
    before = _value("http_requests_total", method="GET", endpoint="/api/v1/boom", status_code="500")
    timed = _value("http_request_duration_seconds_count", method="GET", endpoint="/api/v1/boom")
    async with _client(app) as client:
        assert (await client.get("/api/v1/boom")).status_code == 500
    assert _value("http_requests_total", method="GET", endpoint="/api/v1/boom", status_code="500") == before + 1
    assert _value("http_request_duration_seconds_count", method="GET", endpoint="/api/v1/boom") == timed + 1


async def test_nonstandard_methods_are_one_label_value() -> None:
    app, _, _ = make_app()
    before = _value("http_requests_total", method="OTHER", endpoint=UNMATCHED_ENDPOINT, status_code="404")
    async with _client(app) as client:
        await client.request("X-HOSTILE-1", "/nowhere")
        await client.request("X-HOSTILE-2", "/nowhere")
    assert _value("http_requests_total", method="OTHER", endpoint=UNMATCHED_ENDPOINT, status_code="404") == before + 2


async def test_in_progress_rises_while_a_request_runs() -> None:
    app, entered, release = make_app()
    base = _value("http_requests_in_progress", method="GET")
    async with _client(app) as client:
        pending = asyncio.ensure_future(client.get("/api/v1/wait"))
        await asyncio.wait_for(entered.wait(), 5)
        assert _value("http_requests_in_progress", method="GET") == base + 1
        release.set()
        assert (await pending).status_code == 200
    assert _value("http_requests_in_progress", method="GET") == base


def test_buckets_bracket_the_one_second_alert() -> None:
    # p95 > 1 s must be decided between neighbouring buckets, not inside a wide one.
    assert 1.0 in HTTP_DURATION_BUCKETS
    below = max(b for b in HTTP_DURATION_BUCKETS if b < 1)
    above = min(b for b in HTTP_DURATION_BUCKETS if b > 1)
    assert below >= 0.75 and above <= 1.5


async def test_metrics_endpoint_serves_the_families() -> None:
    app, _, _ = make_app()
    async with _client(app) as client:
        await client.get("/api/v1/companies/x")
        resp = await client.get("/metrics")
    assert resp.status_code == 200
    text = resp.text
    assert 'http_requests_total{endpoint="/api/v1/companies/{company_id}",method="GET",status_code="200"}' in text
    bucket = 'http_request_duration_seconds_bucket{endpoint="/api/v1/companies/{company_id}",le="1.0",method="GET"}'
    assert bucket in text
    # The scrape itself is counted under the mount's path.
    async with _client(app) as client:
        await client.get("/metrics")
    assert _value("http_requests_total", method="GET", endpoint="/metrics", status_code="200") >= 1


async def test_mounted_apps_keep_their_prefix() -> None:
    async def item(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    inner = Starlette(routes=[Route("/items/{item_id}", item)])
    outer = Starlette(routes=[Mount("/v2", app=inner)])
    app = MetricsMiddleware(outer)
    before = _value("http_requests_total", method="GET", endpoint="/v2/items/{item_id}", status_code="200")
    async with _client(app) as client:
        assert (await client.get("/v2/items/7")).status_code == 200
    assert _value("http_requests_total", method="GET", endpoint="/v2/items/{item_id}", status_code="200") == before + 1
