"""Bound context: the API, and isolation between threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

import logging_config
from logging_config import bind, bind_user, clear_context, context, get_context, unbind

from .conftest import Output

log = logging.getLogger("app.ctx")


def test_bind_unbind_and_get_context() -> None:
    bind(request_id="r-1", tenant="acme")
    bind(user_id=7)
    assert get_context() == {"request_id": "r-1", "user_id": "7", "tenant": "acme"}
    unbind("tenant", "not-bound")
    assert get_context() == {"request_id": "r-1", "user_id": "7"}
    clear_context()
    assert get_context() == {}


def test_get_context_is_a_copy() -> None:
    bind(request_id="r")
    get_context()["request_id"] = "changed"
    assert get_context() == {"request_id": "r"}


def test_known_ids_are_strings_and_none_means_unbound() -> None:
    company = uuid.UUID(int=5)
    bind(user_id=42, company_id=company)
    assert get_context() == {"user_id": "42", "company_id": str(company)}
    bind(user_id=None)
    assert get_context() == {"company_id": str(company)}


def test_context_manager_restores_the_previous_context() -> None:
    bind(request_id="outer", user_id="u")
    with context(request_id="inner", job="sync"):
        assert get_context() == {"request_id": "inner", "user_id": "u", "job": "sync"}
    assert get_context() == {"request_id": "outer", "user_id": "u"}


def test_record_fields_cannot_be_bound() -> None:
    for field in ("message", "service", "level", "timestamp", "exception"):
        with pytest.raises(ValueError, match=field):
            bind(**{field: "x"})


def test_bind_user_outside_a_request_binds_like_bind() -> None:
    bind_user(user_id="u-1", company_id="c-1")
    assert get_context() == {"user_id": "u-1", "company_id": "c-1"}


def test_threads_do_not_share_context(output: Output) -> None:
    bind(request_id="main")
    barrier = threading.Barrier(8)

    def work(index: int) -> dict[str, str]:
        clear_context()
        bind(request_id=f"thread-{index}")
        barrier.wait()  # every thread has bound before any logs
        log.info("in thread", extra={"index": index})
        return get_context()

    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(work, range(8)))
    assert seen == [{"request_id": f"thread-{index}"} for index in range(8)]
    assert get_context() == {"request_id": "main"}
    for record in output.by_message("in thread"):
        assert record["request_id"] == f"thread-{record['index']}"


@pytest.mark.anyio
async def test_asyncio_tasks_do_not_share_context(output: Output) -> None:
    async def handle(index: int) -> None:
        bind(request_id=f"req-{index}", user_id=f"user-{index}")
        await asyncio.sleep(0.001 * (index % 5))
        log.info("handled", extra={"index": index})
        await asyncio.sleep(0)
        assert get_context()["request_id"] == f"req-{index}"

    bind(request_id="parent")
    await asyncio.gather(*(handle(index) for index in range(50)))
    assert get_context() == {"request_id": "parent"}
    records = output.by_message("handled")
    assert len(records) == 50
    for record in records:
        assert (record["request_id"], record["user_id"]) == (f"req-{record['index']}", f"user-{record['index']}")


def test_unbound_fields_are_absent_from_the_line(output: Output) -> None:
    log.info("no context")
    [record] = output.records()
    assert not {"request_id", "user_id", "company_id", "task_id"} & set(record)


def test_public_names_are_exported() -> None:
    for name in ("bind", "unbind", "context", "get_context", "clear_context", "bind_user", "configure"):
        assert callable(getattr(logging_config, name))
