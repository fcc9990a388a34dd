"""A small threaded HTTP server for Prometheus scraping and Kubernetes probes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import make_wsgi_app

from shipper.metrics import REGISTRY
from shipper.topology import Health


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not worth a log line
        pass


def build_app(health: Health) -> Callable[..., Iterable[bytes]]:
    metrics_app = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        body: dict[str, Any]
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/health":
            ok = health.started and not health.stopping
            body = {"status": "ok" if ok else "starting" if not health.started else "stopping"}
        elif path == "/ready":
            ok = health.ready()
            body = {"ready": ok, "sinks": health.sinks}
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        status = "200 OK" if ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json")])
        return [orjson.dumps(body) + b"\n"]

    return app


class ApiServer:
    """Serves in a daemon thread so scrapes never wait on the event loop."""

    def __init__(self, address: str, health: Health) -> None:
        host, _, port = address.rpartition(":")
        self._httpd = make_server(host.strip("[]"), int(port), build_app(health), _Server, _QuietHandler)
        self.port = self._httpd.server_port
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="api", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
