"""Multiprocess mode: two worker processes record, a third answers the scrape for both."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

WORKER = textwrap.dedent("""
    import asyncio, sys
    import httpx
    from fastapi import FastAPI
    from sqlalchemy import create_engine
    from sqlalchemy.pool import QueuePool
    from logging_config.metrics import MetricsMiddleware
    from logging_config.metrics.sqlalchemy import instrument_pool

    requests, held = int(sys.argv[1]), int(sys.argv[2])
    app = FastAPI()
    app.add_middleware(MetricsMiddleware)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        return {"id": item_id}

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://w") as client:
            for i in range(requests):
                assert (await client.get(f"/items/{i}")).status_code == 200

    asyncio.run(main())
    engine = create_engine(f"sqlite:///{sys.argv[3]}", poolclass=QueuePool, pool_size=4, max_overflow=0)
    instrument_pool(engine, "main")
    connections = [engine.connect() for _ in range(held)]
    for c in connections:
        c.exec_driver_sql("select 1")
    print("ready", flush=True)
    sys.stdin.read()  # stay alive (live gauges) until the test closes stdin
""")

SCRAPE = textwrap.dedent("""
    import asyncio
    import httpx
    from logging_config.metrics import metrics_app

    async def main() -> None:
        transport = httpx.ASGITransport(app=metrics_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
            print((await client.get("/metrics")).text)

    asyncio.run(main())
""")


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, dict(s.labels), s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def test_two_workers_are_summed_and_their_pools_kept_apart(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(n), str(h), str(tmp_path / f"{n}.db")],
                                env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for n, h in ((3, 4), (5, 1))]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        scrape = subprocess.run([sys.executable, "-c", SCRAPE], env=env, capture_output=True, text=True,
                                timeout=60, check=True)
    finally:
        for worker in workers:
            worker.communicate("", timeout=30)
    samples = _samples(scrape.stdout)
    [(_, _, total)] = [s for s in samples if s[0] == "http_requests_total"
                       and s[1] == {"method": "GET", "endpoint": "/items/{item_id}", "status_code": "200"}]
    assert total == 8
    [(_, _, count)] = [s for s in samples if s[0] == "http_request_duration_seconds_count"]
    assert count == 8
    pids = {str(w.pid) for w in workers}
    active = {s[1]["pid"]: s[2] for s in samples if s[0] == "db_connections_active"}
    idle = {s[1]["pid"]: s[2] for s in samples if s[0] == "db_connections_idle"}
    top = {s[1]["pid"]: s[2] for s in samples if s[0] == "db_connections_max"}
    # One exhausted process (4 of 4) stays visible next to a quiet one.
    assert active == {str(workers[0].pid): 4.0, str(workers[1].pid): 1.0}
    assert set(idle) == pids and set(top) == pids and set(top.values()) == {4.0}
