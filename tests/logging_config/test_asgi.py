"""RequestContextMiddleware with FastAPI, driven through httpx's ASGITransport."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, Depends, FastAPI, Header

import logging_config
from logging_config.asgi import RequestContextMiddleware

from .conftest import Output, without_pytest_log_capture

log = logging.getLogger("app.api")

pytestmark = pytest.mark.anyio


def current_user(x_user: str = Header(), x_company: str = Header()) -> str:
    """A sync dependency: FastAPI runs it in a worker thread, on a copy of the context."""
    logging_config.bind_user(user_id=x_user, company_id=x_company)
    return x_user


def make_app(middleware: bool = True) -> FastAPI:
    app = FastAPI()
    if middleware:
        app.add_middleware(RequestContextMiddleware)

    @app.get("/whoami")
    async def whoami(user: str = Depends(current_user)) -> dict[str, Any]:
        await asyncio.sleep(0.01 * (hash(user) % 3))  # interleave concurrent requests
        log.info("whoami", extra={"who": user})
        return logging_config.get_context()

    @app.get("/public")
    def public() -> dict[str, str]:
        log.info("public")
        return {"ok": "yes"}

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("handler bug")

    return app


def client(app: Any, **transport: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, **transport), base_url="http://ecvi.test")


def access_lines(output: Output) -> list[dict[str, Any]]:
    return [record for record in output.records() if record["logger"] == "ecvi.access"]


def app_lines(output: Output) -> list[dict[str, Any]]:
    """Lines of the app and the middleware (httpx and asyncio log too)."""
    return [record for record in output.records() if record["logger"].startswith(("app.", "ecvi."))]


async def test_request_id_is_made_bound_echoed_and_logged(output: Output) -> None:
    async with client(make_app()) as http:
        response = await http.get("/public?token=abc")
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    public, access = app_lines(output)
    assert public["message"] == "public" and public["request_id"] == request_id
    assert access["logger"] == "ecvi.access" and access["request_id"] == request_id
    assert access["message"] == "GET /public 200"
    assert (access["method"], access["path"], access["status"]) == ("GET", "/public", 200)
    assert access["client"] == "127.0.0.1:123"
    assert isinstance(access["duration_ms"], float) and access["duration_ms"] >= 0
    assert "/public?" not in access["message"]  # the query string is not in the access line
    assert "token=abc" not in output.text  # and httpx's own line about it is redacted


async def test_incoming_request_id_is_kept_and_garbage_is_replaced(output: Output) -> None:
    async with client(make_app()) as http:
        kept = await http.get("/public", headers={"X-Request-ID": "edge-7f3a:01"})
        replaced = await http.get("/public", headers={b"X-Request-ID": "bad id\u00e9".encode() + b"x" * 200})
    assert kept.headers["x-request-id"] == "edge-7f3a:01"
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
    ids = [record["request_id"] for record in access_lines(output)]
    assert ids == [kept.headers["x-request-id"], replaced.headers["x-request-id"]]


async def test_user_bound_in_a_threaded_dependency_reaches_the_access_line(output: Output) -> None:
    async with client(make_app()) as http:
        response = await http.get("/whoami", headers={"X-User": "user-123", "X-Company": "c-1"})
    assert response.json() == {
        "request_id": response.headers["x-request-id"],
        "user_id": "user-123",
        "company_id": "c-1",
    }
    whoami, access = app_lines(output)
    for record in (whoami, access):
        assert (record["user_id"], record["company_id"]) == ("user-123", "c-1")
        assert record["request_id"] == response.headers["x-request-id"]


async def test_fifty_concurrent_requests_never_see_each_others_context(output: Output) -> None:
    async with client(make_app()) as http:
        responses = await asyncio.gather(
            *(
                http.get(
                    "/whoami",
                    headers={"X-Request-ID": f"req-{n}", "X-User": f"user-{n}", "X-Company": f"co-{n % 7}"},
                )
                for n in range(50)
            )
        )
    for n, response in enumerate(responses):
        assert response.json() == {"request_id": f"req-{n}", "user_id": f"user-{n}", "company_id": f"co-{n % 7}"}
    records = app_lines(output)
    assert len(records) == 100
    for record in records:
        n = int(record["request_id"].removeprefix("req-"))
        assert (record["user_id"], record["company_id"]) == (f"user-{n}", f"co-{n % 7}")
    assert logging_config.get_context() == {}


async def test_unhandled_error_gives_a_500_access_line(output: Output) -> None:
    with without_pytest_log_capture():
        async with client(make_app(), raise_app_exceptions=False) as http:
            response = await http.get("/fail", headers={"X-Request-ID": "r-500"})
    assert response.status_code == 500
    [access] = access_lines(output)
    assert (access["status"], access["level"], access["request_id"]) == (500, "ERROR", "r-500")


@pytest.mark.parametrize("inner_too", [False, True])
async def test_wrapping_the_whole_app_also_tags_error_responses(output: Output, inner_too: bool) -> None:
    app = RequestContextMiddleware(make_app(middleware=inner_too))
    with without_pytest_log_capture():
        async with client(app, raise_app_exceptions=False) as http:
            response = await http.get("/fail", headers={"X-Request-ID": "r-outer"})
    assert response.status_code == 500 and response.headers["x-request-id"] == "r-outer"
    assert [record["status"] for record in access_lines(output)] == [500]  # installed twice, logged once


async def test_websocket_and_lifespan_scopes(output: Output) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        seen[scope["type"]] = logging_config.get_context()

    middleware = RequestContextMiddleware(app)

    async def noop(*_: Any) -> Any:
        return {}

    await middleware({"type": "lifespan"}, noop, noop)
    await middleware({"type": "websocket", "headers": [(b"x-request-id", b"ws-1")]}, noop, noop)
    assert seen == {"lifespan": {}, "websocket": {"request_id": "ws-1"}}
    assert app_lines(output) == []  # no access line for websockets or lifespan


@pytest.mark.parametrize("logger_name", ["ecvi.access", "custom.access"])
async def test_access_logger_name_is_configurable(output: Output, logger_name: str) -> None:
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware, logger=logger_name)
    async with client(app) as http:
        await http.get("/missing")
    [access] = [record for record in output.records() if record["logger"] == logger_name]
    assert access["logger"] == logger_name and access["status"] == 404 and access["level"] == "INFO"


async def test_duration_stops_at_the_last_response_byte_not_after_background_tasks(output: Output) -> None:
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware)

    def slow_cleanup() -> None:
        time.sleep(0.3)
        log.info("cleanup done")

    @app.post("/jobs")
    async def create_job(background: BackgroundTasks) -> dict[str, str]:
        background.add_task(slow_cleanup)
        return {"ok": "yes"}

    async with client(app) as http:
        await http.post("/jobs", headers={"X-Request-ID": "r-bg"})
    cleanup, access = app_lines(output)
    assert cleanup["message"] == "cleanup done" and cleanup["request_id"] == "r-bg"
    assert access["request_id"] == "r-bg" and access["duration_ms"] < 250
