"""Per-request cost of logging_config.metrics.MetricsMiddleware.

The same FastAPI app (one route with a path parameter) is called directly as an ASGI app, without
a server or client, with and without the middleware; the difference per request is what the
middleware adds (count, histogram, in-progress gauge, route template lookup).

    python bench/metrics_overhead.py --requests 20000 --rounds 7

Time is the process's CPU time; rounds are interleaved, the best round is reported (the least
disturbed by other processes) with the median. Multiprocess mode (PROMETHEUS_MULTIPROC_DIR set
before start) writes to memory-mapped files instead and can be measured the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI

from logging_config.metrics import MetricsMiddleware

CLOCK = time.process_time
ASGI = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


def make_app(metrics: bool) -> FastAPI:
    app = FastAPI()
    if metrics:
        app.add_middleware(MetricsMiddleware)

    @app.get("/api/v1/companies/{company_id}")
    async def company(company_id: str) -> dict[str, str]:
        return {"id": company_id}

    return app


async def _drive(app: ASGI, requests: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        return None

    began = CLOCK()
    for i in range(requests):
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": f"/api/v1/companies/{i % 50}", "raw_path": b"", "root_path": "",
                 "query_string": b"", "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1),
                 "server": ("127.0.0.1", 80)}
        await app(scope, receive, send)
    return CLOCK() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    apps = {"bare": make_app(False), "metrics": make_app(True)}
    loop = asyncio.new_event_loop()
    for app in apps.values():  # warm-up: build the middleware stack, create the label children
        loop.run_until_complete(_drive(app, 500))
    times: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(args.rounds):
        for name, app in apps.items():
            times[name].append(loop.run_until_complete(_drive(app, args.requests)) / args.requests * 1e6)
    loop.close()
    print(f"{'variant':<10} {'best µs/request':>16} {'median':>10}")
    for name, values in times.items():
        print(f"{name:<10} {min(values):>16.1f} {statistics.median(values):>10.1f}")
    best = min(times["metrics"]) - min(times["bare"])
    median = statistics.median(times["metrics"]) - statistics.median(times["bare"])
    print(f"MetricsMiddleware adds {best:.1f} µs per request (best rounds), {median:.1f} µs (medians)")


if __name__ == "__main__":
    main()
