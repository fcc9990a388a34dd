"""A small backend instrumented with logging_config.metrics, run for real by the alerts e2e test.

`uvicorn tests.deploy.backend_app:app` serves a FastAPI app (healthy, failing, slow endpoints and
one that holds every connection of its SQLAlchemy pool); `celery -A tests.deploy.backend_app
worker` runs its tasks through a filesystem broker and exports their metrics itself. Settings come
from the environment: ECVI_E2E_DIR (broker folders, SQLite file, the pool's release flag) and
ECVI_E2E_CELERY_METRICS_PORT (set for the worker only).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from celery import Celery
from fastapi import FastAPI, Response
from sqlalchemy import create_engine, text
from sqlalchemy.pool import QueuePool

from logging_config.metrics import MetricsMiddleware, mount_metrics
from logging_config.metrics import celery as celery_metrics
from logging_config.metrics.sqlalchemy import instrument_pool

WORKDIR = Path(os.environ.get("ECVI_E2E_DIR", "/tmp/ecvi-e2e"))
POOL_SIZE = 4
SLOW_SECONDS = 1.3
RELEASE_FLAG = WORKDIR / "pool-release"

# -- the web app -------------------------------------------------------------------------------------
app = FastAPI()
app.add_middleware(MetricsMiddleware)
mount_metrics(app)
engine = create_engine(f"sqlite:///{WORKDIR / 'app.db'}", poolclass=QueuePool, pool_size=POOL_SIZE,
                       max_overflow=0, pool_timeout=2)
instrument_pool(engine, "main")


@app.get("/api/v1/companies/{company_id}")
async def company(company_id: str) -> dict[str, str]:
    return {"id": company_id}


@app.get("/api/v1/fail")
async def fail() -> Response:
    return Response("registry unavailable", status_code=503)


@app.get("/api/v1/slow")
async def slow() -> dict[str, float]:
    await asyncio.sleep(SLOW_SECONDS)
    return {"slept": SLOW_SECONDS}


def _hold_pool(limit: float) -> None:
    held = [engine.connect() for _ in range(POOL_SIZE)]
    try:
        for conn in held:
            conn.execute(text("select 1"))
        deadline = time.monotonic() + limit
        while not RELEASE_FLAG.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for conn in held:
            conn.close()


@app.post("/api/v1/pool/hold")
def hold(limit: float = 120) -> dict[str, int]:
    """Check out the whole pool in a background thread until RELEASE_FLAG exists."""
    threading.Thread(target=_hold_pool, args=(limit,), daemon=True).start()
    return {"holding": POOL_SIZE}


# -- the Celery app ----------------------------------------------------------------------------------
def celery_config(workdir: Path) -> dict[str, object]:
    """Settings of a Celery app using the filesystem broker under `workdir` (the test publishes
    with the same ones)."""
    broker = str(workdir / "broker")
    return {
        "broker_url": "filesystem://",
        "broker_transport_options": {"data_folder_in": broker, "data_folder_out": broker,
                                     "processed_folder": str(workdir / "processed"), "store_processed": False,
                                     "control_folder": str(workdir / "control"),
                                     "polling_interval": 0.1},
        "task_ignore_result": True,
        "worker_hijack_root_logger": False,
        "worker_prefetch_multiplier": 1,
    }


def make_dirs(workdir: Path) -> None:
    """The broker's folders (the filesystem transport does not create them)."""
    for folder in (workdir / "broker", workdir / "processed", workdir / "control"):
        folder.mkdir(parents=True, exist_ok=True)


celery_app = Celery("ecvi-e2e", set_as_current=False)
celery_app.conf.update(celery_config(WORKDIR))
_metrics_port = os.environ.get("ECVI_E2E_CELERY_METRICS_PORT")
celery_metrics.install(exporter_port=int(_metrics_port) if _metrics_port else None, exporter_address="127.0.0.1")


@celery_app.task(name="verify_company")
def verify_company(ok: bool = True) -> str:
    time.sleep(0.02)
    if not ok:
        raise ValueError("registry lookup failed")
    return "verified"

