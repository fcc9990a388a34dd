"""Prometheus metrics of the ECVI backend, the ones the shipped alerts and dashboard query.

Example::

    from logging_config.metrics import MetricsMiddleware, mount_metrics
    app.add_middleware(MetricsMiddleware)
    mount_metrics(app)                                         # GET /metrics
    logging_config.metrics.sqlalchemy.instrument_pool(engine, "main")
    logging_config.metrics.celery.install(exporter_port=9808)  # in the Celery app's module

Needs the ``metrics`` extra (prometheus-client). Several processes (gunicorn or uvicorn
``--workers``, Celery prefork) need ``PROMETHEUS_MULTIPROC_DIR``: an empty directory, the same for
all of a pod's processes, set before they start; any worker then answers a scrape for all.
:data:`FAMILIES` names every family with its labels; the deploy tests check alerts and panels
against it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ._exposition import mark_process_dead, metrics_app, mount_metrics, multiprocess_dir, scrape_registry
from ._registry import (
    CELERY_DURATION_BUCKETS,
    FAMILIES,
    HTTP_DURATION_BUCKETS,
    UNMATCHED_ENDPOINT,
    Family,
    record_pool,
    record_task,
    sample_names,
)
from .asgi import MetricsMiddleware, route_template

__all__ = [
    "CELERY_DURATION_BUCKETS",
    "FAMILIES",
    "HTTP_DURATION_BUCKETS",
    "UNMATCHED_ENDPOINT",
    "Family",
    "MetricsMiddleware",
    "mark_process_dead",
    "metrics_app",
    "mount_metrics",
    "multiprocess_dir",
    "record_pool",
    "record_task",
    "route_template",
    "sample_names",
    "scrape_registry",
]

_SUBMODULES = frozenset({"celery", "sqlalchemy"})


def __getattr__(name: str) -> ModuleType:
    # Loaded on first use: each needs its own optional dependency.
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
