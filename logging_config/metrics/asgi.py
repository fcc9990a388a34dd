"""Request metrics for ASGI apps (FastAPI, Starlette): count, latency and in-progress requests.

A pure ASGI middleware, like :mod:`logging_config.asgi`, so it also counts the 500 answers of
an app that raised, and times to the last byte of the response. Requests are labelled with the
route *template* (``/api/v1/companies/{company_id}``), read from ``scope["route"]`` after
routing: a raw path would make one series per id or per URL a scanner tries. Requests no
route matched share :data:`UNMATCHED_ENDPOINT`.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from ..asgi import ASGIApp, Message, Receive, Scope, Send
from ._registry import HTTP_DURATION, HTTP_IN_PROGRESS, HTTP_REQUESTS, UNMATCHED_ENDPOINT

__all__ = ["MetricsMiddleware", "route_template"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
_SCOPE_KEY = "ecvi.metrics"


def route_template(scope: MutableMapping[str, Any], root_path: str = "") -> str:
    """The template of the route that handled a request, with the prefixes of the mounts it went
    through; :data:`UNMATCHED_ENDPOINT` when no route matched. ``root_path`` is the scope's
    ``root_path`` before routing (mounts append to it)."""
    route = scope.get("route") or _route_of_endpoint(scope)
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED_ENDPOINT
    prefix = str(scope.get("root_path", ""))
    prefix = prefix[len(root_path):] if prefix.startswith(root_path) else ""
    if hasattr(route, "routes"):
        # A Mount serving a plain ASGI app (no inner router set a route): its path is the prefix.
        return prefix or path
    return prefix + path


def _route_of_endpoint(scope: MutableMapping[str, Any]) -> Any:
    # FastAPI puts only its own APIRoutes in scope["route"]; a plain Starlette Route there (such
    # as the /metrics one) leaves just the endpoint it chose.
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return None
    for route in getattr(scope.get("router"), "routes", ()):
        if getattr(route, "endpoint", None) is endpoint:
            return route
    return None


class MetricsMiddleware:
    """Counts each HTTP request in ``http_requests_total{method,endpoint,status_code}``, times it in
    ``http_request_duration_seconds{method,endpoint}`` and tracks ``http_requests_in_progress``.

    ``app.add_middleware(MetricsMiddleware)``; serve the numbers with
    :func:`logging_config.metrics.mount_metrics`. Methods outside the HTTP standard ones are
    counted as ``OTHER`` (a client chooses them). Installed twice, the inner one does nothing.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # labels() takes a lock and builds a key per call; the children are reused instead.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _SCOPE_KEY in scope:
            await self.app(scope, receive, send)
            return
        scope[_SCOPE_KEY] = True
        method = scope.get("method", "")
        if method not in _METHODS:
            method = "OTHER"
        root_path = str(scope.get("root_path", ""))
        status = 500  # what the server answers if the app fails before responding
        finished: float | None = None

        async def send_and_watch(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = time.perf_counter()

        in_progress = HTTP_IN_PROGRESS.labels(method)
        in_progress.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            ended = finished if finished is not None else time.perf_counter()
            in_progress.dec()
            counter, histogram = self._series(method, route_template(scope, root_path), status)
            counter.inc()
            histogram.observe(ended - started)

    def _series(self, method: str, endpoint: str, status: int) -> tuple[Any, Any]:
        key = (method, endpoint, status)
        children = self._children.get(key)
        if children is None:
            children = (HTTP_REQUESTS.labels(method, endpoint, str(status)), HTTP_DURATION.labels(method, endpoint))
            self._children[key] = children
        return children
