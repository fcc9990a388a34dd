"""A FastAPI request that enqueues a Celery task, run by a real (in-process) worker.

The request lines and the task lines must share request_id, user_id and company_id, and
concurrent requests must never mix them up.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.result import AsyncResult
from fastapi import Depends, FastAPI, Header

import logging_config
import logging_config.celery as log_celery
from logging_config.asgi import RequestContextMiddleware

from .conftest import Output

log = logging.getLogger("app.companies")
task_log = logging.getLogger("app.tasks")

pytestmark = pytest.mark.anyio

celery_app = Celery("ecvi_logging_test", broker="memory://", backend="cache+memory://")
celery_app.conf.update(
    broker_transport_options={"polling_interval": 0.01},
    task_serializer="json",
    result_serializer="json",
)


@celery_app.task(name="reports.build")
def build_report(company: str) -> dict[str, Any]:
    task_log.info("Report built", extra={"company": company})
    return logging_config.get_context()


def current_user(x_user: str = Header(), x_company: str = Header()) -> str:
    logging_config.bind_user(user_id=x_user, company_id=x_company)
    return x_user


api = FastAPI()
api.add_middleware(RequestContextMiddleware)


@api.post("/companies")
def create_company(user: str = Depends(current_user)) -> dict[str, str]:
    log.info("Company created", extra={"plan": "pro"})
    return {"task_id": build_report.delay("acme").id}


@pytest.fixture(scope="module")
def worker() -> Iterator[None]:
    log_celery.install()
    # Logging is already configured, so the worker's setup_logging signal leaves it alone.
    logging_config.configure(service="worker-fixture", stream=io.StringIO())
    with start_worker(celery_app, perform_ping_check=False, loglevel="INFO", shutdown_timeout=30):
        yield
    log_celery.uninstall()


def wait(task_id: str) -> dict[str, Any]:
    result: dict[str, Any] = AsyncResult(task_id, app=celery_app).get(timeout=20, interval=0.01)
    return result


async def post_companies(*headers: dict[str, str]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://ecvi.test") as http:
        return await asyncio.gather(*(http.post("/companies", headers=h) for h in headers))


async def test_request_and_task_lines_share_the_context(worker: None, output: Output) -> None:
    [response] = await post_companies({"X-User": "user-123", "X-Company": "c-42"})
    request_id = response.headers["x-request-id"]
    task_id = response.json()["task_id"]
    task_context = wait(task_id)

    expected = {"request_id": request_id, "user_id": "user-123", "company_id": "c-42"}
    assert task_context == {**expected, "task_id": task_id, "task_name": "reports.build"}
    [created] = output.by_message("Company created")
    [built] = output.by_message("Report built")
    [access] = [record for record in output.records() if record["logger"] == "ecvi.access"]
    for record in (created, built, access):
        assert {key: record[key] for key in expected} == expected
    assert (built["task_id"], built["task_name"], built["company"]) == (task_id, "reports.build", "acme")
    assert list(built)[4:9] == ["request_id", "user_id", "company_id", "task_id", "task_name"]
    assert "task_id" not in created and access["status"] == 200


async def test_fifty_concurrent_requests_keep_their_own_context_into_their_tasks(worker: None, output: Output) -> None:
    headers = [{"X-Request-ID": f"req-{n}", "X-User": f"user-{n}", "X-Company": f"co-{n}"} for n in range(50)]
    responses = await post_companies(*headers)
    contexts = [wait(response.json()["task_id"]) for response in responses]

    for n, (response, task_context) in enumerate(zip(responses, contexts, strict=True)):
        assert response.headers["x-request-id"] == f"req-{n}"
        assert (task_context["request_id"], task_context["user_id"], task_context["company_id"]) == (
            f"req-{n}", f"user-{n}", f"co-{n}",
        )  # fmt: skip
    lines = [record for record in output.records() if record["logger"].startswith(("app.", "ecvi."))]
    assert len(lines) == 150  # created + access per request, built per task
    for record in lines:
        n = record["request_id"].removeprefix("req-")
        assert (record["user_id"], record["company_id"]) == (f"user-{n}", f"co-{n}")


def test_the_worker_forgets_a_tasks_context_after_it_ran(worker: None, output: Output) -> None:
    with logging_config.context(request_id="req-first", user_id="u-first"):
        first = build_report.delay("first").id
    wait(first)
    second = build_report.delay("second").id  # published outside any request
    second_context = wait(second)
    assert second_context == {"task_id": second, "task_name": "reports.build"}
    [record] = [r for r in output.by_message("Report built") if r["company"] == "second"]
    assert "request_id" not in record and "user_id" not in record


def test_a_task_enqueued_by_a_task_knows_its_parent(worker: None, output: Output) -> None:
    headers: dict[str, Any] = {}
    with logging_config.context(request_id="r-1", task_id="parent-task", task_name="reports.parent"):
        log_celery._on_publish(headers=headers)
    assert headers[log_celery.HEADER] == {"request_id": "r-1", "parent_task_id": "parent-task"}


def test_eager_tasks_run_in_the_callers_context(output: Output) -> None:
    log_celery.install()
    celery_app.conf.task_always_eager = True
    try:
        with logging_config.context(request_id="r-eager", user_id="u-1"):
            context = build_report.delay("eager").get()
            after = logging_config.get_context()
    finally:
        celery_app.conf.task_always_eager = False
    assert context["request_id"] == "r-eager" and context["user_id"] == "u-1" and "task_id" in context
    assert after == {"request_id": "r-eager", "user_id": "u-1"}


def test_unserializable_bound_values_do_not_break_publishing() -> None:
    headers: dict[str, Any] = {}
    with logging_config.context(request_id="r", client=object(), attempts=2):
        log_celery._on_publish(headers=headers)
    carried = headers[log_celery.HEADER]
    assert carried["attempts"] == 2 and carried["client"].startswith("<object object")


def test_worker_logging_setup_configures_json_when_nothing_else_did(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h.formatter, logging_config.JsonFormatter)]:
        root.removeHandler(handler)
    log_celery._on_setup_logging(loglevel=logging.INFO)
    logging.getLogger("celery.worker").info("worker ready")
    [line] = [line for line in capsys.readouterr().out.splitlines() if "worker ready" in line]
    assert '"service":"celery"' in line
