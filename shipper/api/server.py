"""A small threaded HTTP server for Prometheus scraping and Kubernetes probes.

Every client is outside our trust, so a connection costs a bounded amount: each socket has a
timeout, and at most ``max_connections`` are served at once. Past the cap the oldest connection
that has not yet sent a whole request is closed to make room (so idle or trickling clients cannot
lock out the kubelet or Prometheus); if every slot is busy with a request, the new one is closed.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import orjson
from prometheus_client import make_wsgi_app

from shipper import metrics
from shipper.api.health import Health
from shipper.errors import StartupError
from shipper.sources.forward.config import parse_address

DEFAULT_TIMEOUT_SECS = 10.0
DEFAULT_MAX_CONNECTIONS = 32


def describe_bind_error(address: str, exc: OSError) -> str:
    """Why ``address`` cannot be listened on, in an operator's words (one line)."""
    if isinstance(exc, socket.gaierror):
        return f"{address}: cannot resolve the host ({exc.strerror})"
    if exc.errno == errno.EADDRINUSE:
        return f"{address} is in use"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{address} is not an address of this host"
    if exc.errno == errno.EACCES:
        return f"{address}: permission denied (ports below 1024 need privileges)"
    return f"{address}: {exc.strerror or exc}"


def bind_problem(address: str) -> str | None:
    """None if ``address`` (host:port) can be listened on now, else why not (see describe_bind_error)."""
    host, port = parse_address(address)
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _name, sockaddr in infos:
            with socket.socket(family, kind, proto) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio and http.server do
                s.bind(sockaddr)
    except OSError as exc:
        return describe_bind_error(address, exc)
    return None


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_timeout = DEFAULT_TIMEOUT_SECS
    max_connections = DEFAULT_MAX_CONNECTIONS

    def server_activate(self) -> None:
        self._conn_lock = threading.Lock()
        self._conns: dict[socket.socket, bool] = {}  # open connections (insertion order) -> request read
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            if len(self._conns) >= self.max_connections and not self._evict_idle():
                super().shutdown_request(request)
                return
            self._conns[request] = False
        super().process_request(request, client_address)

    def _evict_idle(self) -> bool:
        """Close the oldest connection still waiting for its request (the lock is held)."""
        for conn, busy in self._conns.items():
            if not busy:
                del self._conns[conn]
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)  # its thread's read returns at once and it closes
                return True
        return False

    def mark_busy(self, request: Any) -> None:
        with self._conn_lock:
            if request in self._conns:
                self._conns[request] = True

    def shutdown_request(self, request: Any) -> None:
        # Under the lock, so _evict_idle never touches a socket whose descriptor was reused.
        with self._conn_lock:
            self._conns.pop(request, None)
            super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that vanished or timed out is not worth a traceback


class _Handler(WSGIRequestHandler):
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.request_timeout)

    def handle(self) -> None:
        with contextlib.suppress(TimeoutError, ConnectionError):
            super().handle()

    def get_environ(self) -> dict[str, Any]:
        self.server.mark_busy(self.request)  # the whole request has arrived: no longer idle
        return super().get_environ()

    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not worth a log line
        pass


def build_app(health: Health) -> Callable[..., Iterable[bytes]]:
    metrics_app = make_wsgi_app(metrics.REGISTRY)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        body: dict[str, Any]
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/health":
            ok = health.started and not health.stopping
            body = {"status": "ok" if ok else "starting" if not health.started else "stopping"}
        elif path == "/ready":
            body = health.report()
            ok = body["ready"]
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        status = "200 OK" if ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json")])
        return [orjson.dumps(body) + b"\n"]

    return app


class ApiServer:
    """Serves in a daemon thread so scrapes never wait on the event loop.

    Binding happens here: an address that cannot be listened on raises :class:`StartupError`
    naming ``api.address``.
    """

    def __init__(
        self,
        address: str,
        health: Health,
        *,
        timeout_secs: float = DEFAULT_TIMEOUT_SECS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.address = address
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        server_cls = type("_ApiServer", (_Server,), {
            "request_timeout": timeout_secs, "max_connections": max_connections,
            "address_family": socket.AF_INET6 if ":" in host else socket.AF_INET,
        })
        try:
            self._httpd = server_cls((host, int(port)), _Handler)
        except OSError as exc:
            raise StartupError(f"api.address: {describe_bind_error(address, exc)}") from None
        self._httpd.set_app(build_app(health))
        self.port = self._httpd.server_port
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="api", daemon=True)

    def start(self) -> None:
        self._thread.start()
        metrics.COMPONENT_UP.labels("api").set(1)

    def stop(self) -> None:
        metrics.COMPONENT_UP.labels("api").set(0)
        self._httpd.shutdown()
        self._httpd.server_close()
