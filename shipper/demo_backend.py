"""A stand-in ECVI backend for the demo: requests and Celery-like tasks logging through logging_config.

It also serves the backend's Prometheus metrics (logging_config.metrics) on
``ECVI_DEMO_METRICS_ADDRESS`` (default ``127.0.0.1:8000``, ``off`` to disable): its requests go
through the real MetricsMiddleware, so the "ECVI / Backend" dashboard and alerts have data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import sys
import time
import uuid
from collections.abc import MutableMapping
from typing import Any

import logging_config

METRICS_ADDRESS_ENV = "ECVI_DEMO_METRICS_ADDRESS"
_ROUTES = ("/api/v1/companies", "/api/v1/companies/{company_id}", "/api/v1/verifications/{verification_id}")
_POOL_SIZE = 10


class _Route:
    """What a router leaves in ``scope["route"]``: the template the middleware labels by."""

    def __init__(self, path: str) -> None:
        self.path = path


class _DemoRequests:
    """Drives simulated requests through the real metrics middleware (no server needed)."""

    def __init__(self) -> None:
        from logging_config.metrics import MetricsMiddleware

        self.loop = asyncio.new_event_loop()
        self.app = MetricsMiddleware(self._endpoint)

    @staticmethod
    async def _endpoint(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        route, status, seconds = scope["demo"]
        scope["route"] = _Route(route)
        await asyncio.sleep(seconds)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    def request(self, route: str, status: int, seconds: float) -> None:
        scope = {"type": "http", "method": random.choice(["GET", "GET", "POST"]), "path": route, "root_path": "",
                 "headers": [], "demo": (route, status, seconds)}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: MutableMapping[str, Any]) -> None:
            return None

        self.loop.run_until_complete(self.app(scope, receive, send))


def _serve_metrics() -> _DemoRequests | None:
    """Start the metrics endpoint; a demo without it still logs (one line says why)."""
    address = os.environ.get(METRICS_ADDRESS_ENV, "127.0.0.1:8000")
    if address == "off":
        return None
    host, _, port = address.rpartition(":")
    try:
        from prometheus_client import start_http_server

        start_http_server(int(port), host or "127.0.0.1")
    except (ImportError, OSError, ValueError) as exc:
        print(f"demo backend: no metrics on {address!r} ({exc})", file=sys.stderr)
        return None
    print(f"demo backend: metrics on http://{address}/metrics", file=sys.stderr)
    return _DemoRequests()


def _record_metrics(demo: _DemoRequests, n: int, failed: bool) -> None:
    from logging_config.metrics import record_pool, record_task

    slow = random.random() < 0.03
    status = 500 if failed else random.choice([200, 200, 200, 201, 404])
    demo.request(random.choice(_ROUTES), status, random.uniform(1.0, 1.4) if slow else random.expovariate(40))
    record_task("verify_company", "FAILURE" if failed else "SUCCESS", random.expovariate(4))
    if n % 25 == 0:
        record_task("refresh_company", "RETRY", random.expovariate(2))
    active = random.randint(0, 4)
    record_pool("main", active=active, idle=_POOL_SIZE - active, capacity=_POOL_SIZE)


def main(path: str) -> None:
    with open(path, "a", buffering=1, encoding="utf-8") as out:
        logging_config.configure(service="ecvi-backend", environment="demo", version="1.0.0",
                                 fmt="json", stream=out)
        log = logging.getLogger("app.api.v1.companies")
        demo = _serve_metrics()
        n = 0
        while True:
            n += 1
            company = str(uuid.UUID(int=random.getrandbits(128)))
            failed = n % 10 == 0
            with logging_config.context(request_id=uuid.uuid4().hex, user_id=f"user-{n % 7}",
                                        company_id=company):
                log.info("Company created", extra={"seq": n, "plan": random.choice(["free", "pro"])})
                if failed:
                    try:
                        raise ValueError("registry lookup failed")
                    except ValueError:
                        log.exception("Verification failed")
            if demo is not None:
                _record_metrics(demo, n, failed)
            time.sleep(0.2)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the whole process group
        main(sys.argv[1])
