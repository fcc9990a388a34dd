"""Celery task metrics from signals, and an exporter in the worker's main process.

``celery_tasks_total{name,status}`` counts each task's final state once: SUCCESS
(``task_success``), FAILURE (``task_failure``) or RETRY (``task_retry``: this run ended asking for
another). ``celery_task_duration_seconds{name}`` times ``task_prerun`` to ``task_postrun`` in the
process that ran the task.

Prefork workers run tasks in child processes, so the numbers must meet somewhere: with
``PROMETHEUS_MULTIPROC_DIR`` set (before the worker starts) the children write them to files and
the exporter, started by :func:`install` when the worker is ready, serves all of them. Without it
only the solo and threads pools can be exported.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import signals
from prometheus_client import start_http_server

from ._exposition import mark_process_dead, multiprocess_dir, scrape_registry
from ._registry import CELERY_DURATION, record_task

__all__ = ["install", "uninstall"]

_log = logging.getLogger("ecvi.metrics")
_started: dict[str, float] = {}  # task id -> perf_counter at prerun
_exporter: dict[str, Any] = {}


def install(*, exporter_port: int | None = None, exporter_address: str = "0.0.0.0") -> None:
    """Connect the signal handlers (again calling it is harmless).

    With ``exporter_port`` the worker's main process serves ``/metrics`` on that port once it is
    ready (the web process, which also imports the Celery app, starts nothing).
    """
    handlers = ((signals.task_prerun, _on_prerun), (signals.task_postrun, _on_postrun),
                (signals.task_success, _on_success), (signals.task_failure, _on_failure),
                (signals.task_retry, _on_retry), (signals.worker_process_shutdown, _on_process_shutdown))
    for signal, handler in handlers:
        signal.connect(handler, weak=False, dispatch_uid=f"ecvi.metrics.{handler.__name__}")
    if exporter_port is not None:
        _exporter.update(port=exporter_port, address=exporter_address)
        signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid="ecvi.metrics._on_worker_init")
        signals.worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="ecvi.metrics._on_worker_ready")


def uninstall() -> None:
    """Disconnect what :func:`install` connected."""
    for signal, handler in ((signals.task_prerun, _on_prerun), (signals.task_postrun, _on_postrun),
                            (signals.task_success, _on_success), (signals.task_failure, _on_failure),
                            (signals.task_retry, _on_retry), (signals.worker_process_shutdown, _on_process_shutdown),
                            (signals.worker_init, _on_worker_init), (signals.worker_ready, _on_worker_ready)):
        signal.disconnect(dispatch_uid=f"ecvi.metrics.{handler.__name__}")
    _exporter.clear()


def _task_name(sender: Any = None, task: Any = None) -> str:
    named = task if task is not None else sender
    return str(getattr(named, "name", None) or "unknown")


def _on_prerun(task_id: str | None = None, **_: Any) -> None:
    if task_id is not None:
        _started[task_id] = time.perf_counter()


def _on_postrun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    began = _started.pop(task_id, None) if task_id is not None else None
    if began is not None:
        CELERY_DURATION.labels(_task_name(task=task)).observe(time.perf_counter() - began)


def _on_success(sender: Any = None, **_: Any) -> None:
    record_task(_task_name(sender), "SUCCESS")


def _on_failure(sender: Any = None, **_: Any) -> None:
    record_task(_task_name(sender), "FAILURE")


def _on_retry(sender: Any = None, **_: Any) -> None:
    record_task(_task_name(sender), "RETRY")


def _on_process_shutdown(**_: Any) -> None:
    mark_process_dead()


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    pool_cls = getattr(sender, "pool_cls", None)
    where = f"{getattr(pool_cls, '__module__', '')}.{getattr(pool_cls, '__name__', pool_cls)}"
    if multiprocess_dir() is None and "prefork" in where:
        _log.warning("Celery prefork pool without PROMETHEUS_MULTIPROC_DIR: the task metrics of the "
                     "child processes are not exported")


def _on_worker_ready(**_: Any) -> None:
    if "port" not in _exporter or "server" in _exporter:
        return
    address, port = _exporter["address"], _exporter["port"]
    try:
        server, _thread = start_http_server(port, address, registry=scrape_registry())
    except OSError as exc:  # the worker goes on running tasks; only the exporter is missing
        _log.error("Celery metrics exporter cannot listen on %s:%s: %s", address, port, exc)
        return
    _exporter["server"] = server
