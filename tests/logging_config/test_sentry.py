"""Sentry through the SDK's real HTTP transport, into a local envelope endpoint.

A real FastAPI app (served in-process through httpx's ASGI transport) and a real Celery worker
(``start_worker``) report to ``EnvelopeServer``; the tests read what arrived over HTTP.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sentry_sdk
from celery import Celery
from celery.contrib.testing.worker import start_worker
from fastapi import FastAPI

import logging_config
import logging_config.celery as log_celery
from logging_config import sentry as log_sentry
from logging_config.asgi import RequestContextMiddleware

from ._envelopes import EnvelopeServer
from .conftest import parse_lines

SECRET = "sk_live_4f9a8b7c6d5e"
log = logging.getLogger("app.payments")


@pytest.fixture
def envelopes() -> Iterator[EnvelopeServer]:
    server = EnvelopeServer().start()
    yield server
    log_sentry.close_sentry()
    server.stop()


def configure(dsn: str, stream: io.StringIO, traces_sample_rate: float = 0.1) -> None:
    logging_config.configure(
        service="ecvi-backend", environment="staging", version="1.4.2", stream=stream, sentry_dsn=dsn,
        uvicorn_access=False, traces_sample_rate=traces_sample_rate,
        sentry_options={"transport_queue_size": 2000},
    )


def make_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware)

    @app.get("/ok")
    def ok() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/boom")
    def boom() -> None:
        logging_config.bind_user(user_id="user-7", company_id="co-42")
        password = SECRET  # a local variable Sentry would send with the frame
        raise RuntimeError(f"charge failed: Authorization: Bearer {password}")

    @app.get("/handled")
    def handled() -> dict[str, str]:
        logging_config.bind_user(user_id="user-8", company_id="co-43")
        try:
            raise ValueError("verification failed")
        except ValueError as error:
            event_id = sentry_sdk.capture_exception(error)  # application code, no extra call
        return {"event_id": event_id or ""}

    @app.get("/log-error")
    def log_error() -> dict[str, str]:
        logging_config.bind_user(user_id="user-9", company_id="co-44")
        log.info("Payment started with token=%s", SECRET)  # a breadcrumb, scrubbed
        log.error("payment provider refused", extra={"api_key": SECRET, "provider": "acme"})
        return {"status": "logged"}

    return app


async def get(app: FastAPI, *paths: str) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ecvi.test") as http:
        return [await http.get(path) for path in paths]


def error_events(server: EnvelopeServer) -> list[dict[str, Any]]:
    return server.items("event")


@pytest.mark.anyio
async def test_unhandled_request_error_arrives_once_with_context_release_and_environment(
    envelopes: EnvelopeServer,
) -> None:
    stream = io.StringIO()
    configure(envelopes.dsn, stream, traces_sample_rate=0.0)
    [response] = await get(make_app(), "/boom")
    assert response.status_code == 500  # written by Starlette's outermost error middleware
    sentry_sdk.flush(5)
    envelopes.wait_for(lambda: len(error_events(envelopes)) >= 1)
    time.sleep(0.3)  # a duplicate report would arrive now

    [event] = error_events(envelopes)
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["release"] == "1.4.2" and event["environment"] == "staging"
    [access] = [r for r in parse_lines(stream.getvalue()) if r["logger"] == "ecvi.access"]
    assert event["tags"]["request_id"] == access["request_id"]
    assert event["tags"]["company_id"] == "co-42"
    assert event["user"]["id"] == "user-7"
    assert envelopes.paths[0] == "/api/42/envelope/"
    assert SECRET.encode() not in envelopes.raw()
    assert access["status"] == 500 and access["sentry_event_id"] == event["event_id"]
    assert (access["user_id"], access["company_id"]) == ("user-7", "co-42")


@pytest.mark.anyio
async def test_capture_exception_by_application_code_carries_the_bound_context(envelopes: EnvelopeServer) -> None:
    configure(envelopes.dsn, io.StringIO(), traces_sample_rate=0.0)
    [response] = await get(make_app(), "/handled")
    sentry_sdk.flush(5)
    envelopes.wait_for(lambda: len(error_events(envelopes)) >= 1)
    [event] = error_events(envelopes)
    assert event["event_id"] == response.json()["event_id"]
    assert event["tags"]["request_id"] == response.headers["x-request-id"]
    assert (event["tags"]["company_id"], event["user"]["id"]) == ("co-43", "user-8")


@pytest.mark.anyio
async def test_an_error_log_line_becomes_one_event_and_carries_its_id(envelopes: EnvelopeServer) -> None:
    stream = io.StringIO()
    configure(envelopes.dsn, stream, traces_sample_rate=0.0)
    [response] = await get(make_app(), "/log-error")
    sentry_sdk.flush(5)
    envelopes.wait_for(lambda: len(error_events(envelopes)) >= 1)
    time.sleep(0.3)
    [event] = error_events(envelopes)
    [line] = [r for r in parse_lines(stream.getvalue()) if r["message"] == "payment provider refused"]
    assert line["sentry_event_id"] == event["event_id"]
    assert line["api_key"] == logging_config.REDACTED
    assert event["tags"]["request_id"] == line["request_id"] == response.headers["x-request-id"]
    assert event["tags"]["company_id"] == "co-44"
    assert event["logentry"]["message"] == "payment provider refused"
    assert SECRET.encode() not in envelopes.raw()
    crumbs = [c.get("message", "") for c in event.get("breadcrumbs", {}).get("values", [])]
    assert any(c.startswith("Payment started with token=") for c in crumbs), crumbs


@pytest.mark.anyio
async def test_transactions_are_sampled_at_ten_percent(envelopes: EnvelopeServer) -> None:
    configure(envelopes.dsn, io.StringIO())  # the default traces_sample_rate
    app = make_app()
    responses = await get(app, *["/ok"] * 1000)
    assert all(r.status_code == 200 for r in responses)
    sentry_sdk.flush(10)
    time.sleep(0.5)
    sampled = len(envelopes.items("transaction"))
    # Binomial(1000, 0.1): mean 100, standard deviation 9.5. 55..145 is more than 4.7 standard
    # deviations either side (a false failure about once in 400,000 runs), while 5 % or 20 %
    # (means 50 and 200) would fail almost always.
    assert 55 <= sampled <= 145, sampled
    [transaction] = envelopes.items("transaction")[:1]
    assert transaction["tags"]["request_id"]
    assert transaction["release"] == "1.4.2"


def _blackhole() -> socket.socket:
    """A listener that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    return sock


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["refused", "silent"])
async def test_sentry_unreachable_never_blocks_or_breaks_a_request(kind: str) -> None:
    if kind == "refused":
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nothing listens there now
        hole = None
    else:
        hole = _blackhole()
        port = hole.getsockname()[1]
    stream = io.StringIO()
    try:
        configure(f"http://public@127.0.0.1:{port}/42", stream)
        app = make_app()
        responses, latencies = [], []
        for path in ["/boom", "/ok", "/log-error"] * 20:
            started = time.monotonic()
            responses += await get(app, path)
            latencies.append(time.monotonic() - started)
    finally:
        log_sentry.close_sentry(timeout=0.1)
        if hole is not None:
            hole.close()
    assert [r.status_code for r in responses] == [500, 200, 200] * 20
    # A request in-process takes milliseconds; one that waited on the network would hang on
    # the silent listener until the transport's timeout (tens of seconds) or for ever.
    assert max(latencies) < 3.0, max(latencies)
    lines = parse_lines(stream.getvalue())
    assert sum(r["message"] == "payment provider refused" for r in lines) == 20


celery_app = Celery("ecvi_sentry_test", broker="memory://", backend="cache+memory://")
celery_app.conf.update(broker_transport_options={"polling_interval": 0.01}, task_serializer="json")


@celery_app.task(name="reports.fail")
def failing_report(company: str) -> None:
    api_token = SECRET  # noqa: F841 - a local variable Sentry would send with the frame
    raise LookupError(f"no registry entry for {company}")


def test_task_failure_arrives_once_with_the_publishing_requests_context(envelopes: EnvelopeServer) -> None:
    stream = io.StringIO()
    configure(envelopes.dsn, stream, traces_sample_rate=0.0)
    log_celery.install()
    try:
        with start_worker(celery_app, perform_ping_check=False, loglevel="INFO", shutdown_timeout=30):
            with logging_config.context(request_id="req-task-1", user_id="user-3", company_id="co-3"):
                result = failing_report.delay("acme")
            with pytest.raises(LookupError):
                result.get(timeout=20, interval=0.01)
            sentry_sdk.flush(5)
            envelopes.wait_for(lambda: len(error_events(envelopes)) >= 1)
            time.sleep(0.5)
    finally:
        log_celery.uninstall()
    [event] = error_events(envelopes)
    assert event["exception"]["values"][-1]["type"] == "LookupError"
    assert event["tags"]["task_id"] == result.id
    assert event["tags"]["request_id"] == "req-task-1"
    assert (event["tags"]["company_id"], event["user"]["id"]) == ("co-3", "user-3")
    assert event["release"] == "1.4.2" and event["environment"] == "staging"
    assert SECRET.encode() not in envelopes.raw()
    failure_lines = [
        r for r in (json.loads(line) for line in stream.getvalue().splitlines())
        if r.get("task_id") == result.id and r["level"] == "ERROR"
    ]
    assert failure_lines and all(r["sentry_event_id"] == event["event_id"] for r in failure_lines)


def test_no_dsn_leaves_sentry_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    before = sentry_sdk.get_client()
    logging_config.configure(service="x", stream=io.StringIO())
    assert sentry_sdk.get_client() is before and not log_sentry.is_active()


def test_a_malformed_dsn_from_the_environment_is_one_warning_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SENTRY_DSN", "not a dsn")
    stream = io.StringIO()
    logging_config.configure(service="x", stream=stream)
    assert not log_sentry.is_active()
    [line] = parse_lines(stream.getvalue())
    assert line["level"] == "WARNING" and "Sentry not enabled" in line["message"]
