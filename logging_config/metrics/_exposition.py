"""Serving the metrics: an ASGI ``/metrics`` app, and the registry to read in multiprocess mode."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, make_asgi_app, multiprocess

from ..asgi import ASGIApp, Receive, Scope, Send

__all__ = ["mark_process_dead", "metrics_app", "mount_metrics", "multiprocess_dir", "scrape_registry"]


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` when multiprocess mode is on, else None."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def scrape_registry() -> CollectorRegistry:
    """What a scrape should read: every process's files in multiprocess mode, else this process."""
    if multiprocess_dir() is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


class _MetricsApp:
    # A class, not a function: Starlette treats a function endpoint as a request handler.
    def __init__(self) -> None:
        self._single = make_asgi_app(REGISTRY) if multiprocess_dir() is None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        serve = self._single if self._single is not None else make_asgi_app(scrape_registry())
        await serve(scope, receive, send)


def metrics_app() -> ASGIApp:
    """An ASGI app answering with the metrics in the Prometheus text format.

    In multiprocess mode each scrape collects the files of all processes, so any worker may
    answer it.
    """
    return _MetricsApp()


def mount_metrics(app: Any, path: str = "/metrics") -> None:
    """Serve :func:`metrics_app` at exactly ``path`` of a FastAPI/Starlette app (a route, so there
    is no redirect to ``path/`` as with ``app.mount``)."""
    app.add_route(path, metrics_app(), include_in_schema=False)


def mark_process_dead(pid: int | None = None) -> None:
    """Drop a finished worker's live gauges in multiprocess mode (gunicorn's ``child_exit`` hook,
    Celery's ``worker_process_shutdown``); a no-op otherwise."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid() if pid is None else pid)
