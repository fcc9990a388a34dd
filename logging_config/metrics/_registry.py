"""The backend's metric families: the one definition the alerts, the dashboard and the tests read.

Names and labels are the ones ``deploy/prometheus/alerts.yaml`` and
``deploy/grafana/dashboards/ecvi-backend.json`` query. The objects live in prometheus_client's
default registry, so a backend's own metrics are served beside them by the same endpoint.

Multiprocess mode (gunicorn/uvicorn workers, Celery prefork) is prometheus_client's: set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory *before* Python imports prometheus_client.
Each gauge says how the values of several processes combine: the in-progress count is summed over
the live processes; pool gauges keep a ``pid`` label, because each process has its own pool and one
exhausted process must not be averaged away by idle neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CELERY_DURATION_BUCKETS",
    "FAMILIES",
    "HTTP_DURATION_BUCKETS",
    "UNMATCHED_ENDPOINT",
    "Family",
    "record_pool",
    "record_task",
    "sample_names",
]

#: Dense around 1 s, so the p95 > 1 s alert interpolates between 0.75, 1 and 1.5 s rather than
#: inside a 1 to 5 s bucket.
HTTP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
#: Tasks run from milliseconds (a cache refresh) to minutes (a registry crawl).
CELERY_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
#: The ``endpoint`` of requests no route matched: raw paths would make one series per URL a
#: scanner tries.
UNMATCHED_ENDPOINT = "<unmatched>"


@dataclass(frozen=True)
class Family:
    """One metric family as Prometheus sees it: name, type and label names."""

    name: str
    type: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    help: str

    def samples(self) -> set[str]:
        """The sample names the exposition format writes for this family."""
        if self.type == "counter":
            return {f"{self.name}_total", f"{self.name}_created"}
        if self.type == "histogram":
            return {f"{self.name}{s}" for s in ("_bucket", "_sum", "_count", "_created")}
        return {self.name}


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("http_requests", "counter", ("method", "endpoint", "status_code"),
               "HTTP requests by method, route template and status code."),
        Family("http_request_duration_seconds", "histogram", ("method", "endpoint"),
               "HTTP request duration to the last byte of the response, by route template."),
        Family("http_requests_in_progress", "gauge", ("method",), "HTTP requests being handled now."),
        Family("db_connections_active", "gauge", ("pool",), "Connections checked out of the pool."),
        Family("db_connections_idle", "gauge", ("pool",), "Connections open in the pool and not checked out."),
        Family("db_connections_max", "gauge", ("pool",),
               "Connections the pool may hold at most (pool_size + max_overflow)."),
        Family("celery_tasks", "counter", ("name", "status"),
               "Celery tasks finished, by task name and final state (SUCCESS, FAILURE, RETRY)."),
        Family("celery_task_duration_seconds", "histogram", ("name",), "Celery task run time, by task name."),
    )
}


def sample_names() -> set[str]:
    """Every sample name the backend's metrics can export."""
    return {name for family in FAMILIES.values() for name in family.samples()}


def _labels(name: str) -> tuple[str, ...]:
    return FAMILIES[name].labels


def _help(name: str) -> str:
    return FAMILIES[name].help


HTTP_REQUESTS = Counter("http_requests", _help("http_requests"), _labels("http_requests"))
HTTP_DURATION = Histogram("http_request_duration_seconds", _help("http_request_duration_seconds"),
                          _labels("http_request_duration_seconds"), buckets=HTTP_DURATION_BUCKETS)
HTTP_IN_PROGRESS = Gauge("http_requests_in_progress", _help("http_requests_in_progress"),
                         _labels("http_requests_in_progress"), multiprocess_mode="livesum")
DB_ACTIVE = Gauge("db_connections_active", _help("db_connections_active"), _labels("db_connections_active"),
                  multiprocess_mode="liveall")
DB_IDLE = Gauge("db_connections_idle", _help("db_connections_idle"), _labels("db_connections_idle"),
                multiprocess_mode="liveall")
DB_MAX = Gauge("db_connections_max", _help("db_connections_max"), _labels("db_connections_max"),
               multiprocess_mode="liveall")
CELERY_TASKS = Counter("celery_tasks", _help("celery_tasks"), _labels("celery_tasks"))
CELERY_DURATION = Histogram("celery_task_duration_seconds", _help("celery_task_duration_seconds"),
                            _labels("celery_task_duration_seconds"), buckets=CELERY_DURATION_BUCKETS)


def record_task(name: str, status: str, seconds: float | None = None) -> None:
    """Count one finished task in its final state (SUCCESS, FAILURE, RETRY), with its run time.

    The Celery signals call it; other task runners can too.
    """
    CELERY_TASKS.labels(name, status).inc()
    if seconds is not None:
        CELERY_DURATION.labels(name).observe(seconds)


def record_pool(name: str, *, active: int, idle: int, capacity: float) -> None:
    """Set the gauges of a pool that is not SQLAlchemy's (asyncpg, a driver's own pool)."""
    DB_ACTIVE.labels(name).set(active)
    DB_IDLE.labels(name).set(idle)
    DB_MAX.labels(name).set(capacity)
