"""Celery task metrics from signals (eager tasks) and SQLAlchemy pool gauges from pool events."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from celery import Celery
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool, QueuePool

from logging_config.metrics import celery as celery_metrics
from logging_config.metrics.sqlalchemy import instrument_pool, pool_capacity


def _value(metric: str, /, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


@pytest.fixture
def app() -> Iterator[Celery]:
    celery_metrics.install()
    app = Celery("metrics-test", set_as_current=False)
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = False
    yield app
    celery_metrics.uninstall()


def test_tasks_are_counted_by_name_and_final_state(app: Celery) -> None:
    @app.task(name="verify_company", shared=False)
    def verify(ok: bool) -> str:
        if not ok:
            raise ValueError("registry down")
        return "done"

    @app.task(name="refresh_company", shared=False, bind=True, max_retries=1, default_retry_delay=0)
    def refresh(self: object) -> None:
        raise self.retry(exc=RuntimeError("busy"))  # type: ignore[attr-defined]

    before = {s: _value("celery_tasks_total", name="verify_company", status=s) for s in ("SUCCESS", "FAILURE")}
    retried = _value("celery_tasks_total", name="refresh_company", status="RETRY")
    timed = _value("celery_task_duration_seconds_count", name="verify_company")
    verify.delay(True)
    verify.delay(True)
    verify.delay(False)
    refresh.delay()
    assert _value("celery_tasks_total", name="verify_company", status="SUCCESS") == before["SUCCESS"] + 2
    assert _value("celery_tasks_total", name="verify_company", status="FAILURE") == before["FAILURE"] + 1
    assert _value("celery_tasks_total", name="refresh_company", status="RETRY") >= retried + 1
    assert _value("celery_task_duration_seconds_count", name="verify_company") == timed + 3


def test_uninstall_stops_counting(app: Celery) -> None:
    @app.task(name="after_uninstall", shared=False)
    def task() -> None:
        return None

    celery_metrics.uninstall()
    task.delay()
    assert _value("celery_tasks_total", name="after_uninstall", status="SUCCESS") == 0


def _pool(name: str) -> tuple[float, float, float]:
    return (_value("db_connections_active", pool=name), _value("db_connections_idle", pool=name),
            _value("db_connections_max", pool=name))


def test_pool_gauges_follow_checkouts_and_checkins(tmp_path: object) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/a.db", poolclass=QueuePool, pool_size=2, max_overflow=1)
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    instrument_pool(engine, "gauges")

    def agrees() -> tuple[float, float]:
        # The pool's own bookkeeping is the independent answer.
        active, idle, top = _pool("gauges")
        assert (active, idle, top) == (pool.checkedout(), pool.checkedin(), 3)
        return active, idle

    assert agrees() == (0, 0)
    held = [engine.connect() for _ in range(3)]
    for conn in held:
        conn.execute(text("select 1"))
    assert agrees() == (3, 0)
    held.pop().close()
    assert agrees() == (2, 1)
    held.pop().close()
    assert agrees() == (1, 2)  # the queue was full: the overflow connection was closed instead
    held.append(engine.connect())
    assert agrees() == (2, 1)
    # An invalidated connection is closed: the pool keeps its empty slot (and counts it checked
    # in), but only open connections are idle ones.
    held[0].invalidate()
    held.pop(0).close()
    assert _pool("gauges")[:2] == (1, 1) and pool.checkedin() == 2
    held.pop().close()  # both slots are taken (one empty): the overflow connection is closed
    assert _pool("gauges")[:2] == (0, 1)
    with engine.connect() as first, engine.connect() as second:  # the empty slot reconnects
        first.execute(text("select 1"))
        second.execute(text("select 1"))
        assert _pool("gauges")[:2] == (2, 0)
    assert _pool("gauges")[:2] == (0, 2)
    engine.dispose()
    assert _pool("gauges")[:2] == (0, 0)


def test_pools_are_separate_series(tmp_path: object) -> None:
    main = create_engine(f"sqlite:///{tmp_path}/m.db", poolclass=QueuePool, pool_size=2, max_overflow=0)
    replica = create_engine(f"sqlite:///{tmp_path}/r.db", poolclass=QueuePool, pool_size=5, max_overflow=0)
    instrument_pool(main, "p-main")
    instrument_pool(replica, "p-replica")
    with main.connect(), main.connect():
        assert _pool("p-main") == (2, 0, 2)
        assert _pool("p-replica") == (0, 0, 5)


def test_capacity_of_unbounded_pools(tmp_path: object) -> None:
    assert pool_capacity(create_engine(f"sqlite:///{tmp_path}/n.db", poolclass=NullPool).pool) == math.inf
    unbounded = create_engine(f"sqlite:///{tmp_path}/u.db", poolclass=QueuePool, pool_size=2, max_overflow=-1)
    assert pool_capacity(unbounded.pool) == math.inf


def test_exporter_on_a_taken_port_is_one_error_line(caplog: pytest.LogCaptureFixture) -> None:
    import socket

    from celery import signals

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        celery_metrics.install(exporter_port=port, exporter_address="127.0.0.1")
        try:
            with caplog.at_level("ERROR", logger="ecvi.metrics"):
                signals.worker_ready.send(sender=None)
        finally:
            celery_metrics.uninstall()
    [record] = [r for r in caplog.records if r.name == "ecvi.metrics"]
    assert f"127.0.0.1:{port}" in record.getMessage()


def test_exporter_serves_the_task_metrics() -> None:
    import httpx
    from celery import signals

    from tests.services._process import free_port

    port = free_port()
    celery_metrics.install(exporter_port=port, exporter_address="127.0.0.1")
    try:
        signals.worker_ready.send(sender=None)
        server = celery_metrics._exporter["server"]
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        finally:
            server.shutdown()
    finally:
        celery_metrics.uninstall()
    assert "# TYPE celery_tasks_total counter" in text or "# TYPE celery_tasks counter" in text
