"""The backend's alerts fire and resolve in a real Prometheus scraping a real backend.

A FastAPI app under uvicorn (two worker processes, multiprocess mode) and a Celery prefork worker
(its own exporter) from `backend_app.py` are scraped every second by the Prometheus of
`tests/services/prometheus.py`, which evaluates the `ecvi_alerts` group of
`deploy/prometheus/alerts.yaml` with `for:` and `rate()` windows shortened (nothing else changed).
Induced 5xx answers, slow requests, failing tasks and a held pool make each alert fire; back to
healthy traffic, each resolves. Every query of the backend dashboard returns data meanwhile.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from celery import Celery

from tests.deploy.backend_app import celery_config, make_dirs
from tests.deploy.conftest import DEPLOY, REPO
from tests.deploy.test_prometheus import GUIDE_ALERTS
from tests.services._process import ServiceProcess, free_port, tail
from tests.services.prometheus import Prometheus

pytestmark = pytest.mark.integration

WINDOW = "10s"  # rate() windows, 5m in the shipped rules
FOR = "2s"  # for:, 5m in the shipped rules
BOARD = json.loads((DEPLOY / "grafana" / "dashboards" / "ecvi-backend.json").read_text())


def render_backend_rules(window: str = WINDOW, for_: str = FOR) -> dict[str, Any]:
    """The `ecvi_alerts` group of alerts.yaml with every range window and `for:` shortened."""
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())["groups"]
    [group] = [g for g in groups if g["name"] == "ecvi_alerts"]
    for rule in group["rules"]:
        rule["expr"] = re.sub(r"\[\d+[smhd]\]", f"[{window}]", rule["expr"])
        if "for" in rule:
            rule["for"] = for_
    return {"groups": [group]}


def test_rendered_rules_change_only_windows_and_for() -> None:
    rendered = render_backend_rules()["groups"][0]["rules"]
    shipped = [r for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())["groups"]
               if g["name"] == "ecvi_alerts" for r in g["rules"]]
    assert {r["alert"] for r in rendered} == GUIDE_ALERTS
    for short, real in zip(rendered, shipped, strict=True):
        assert short["expr"].replace(f"[{WINDOW}]", "[5m]") == real["expr"]
        assert {k: v for k, v in short.items() if k not in ("expr", "for")} == \
            {k: v for k, v in real.items() if k not in ("expr", "for")}


def _wait_http(url: str, proc: ServiceProcess, timeout: float = 60) -> None:
    proc.wait_until(lambda: httpx.get(url, timeout=2).status_code == 200, timeout)


class Backend:
    """The web app and the Celery worker, each started as its own process group."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        make_dirs(workdir)
        base = {**os.environ, "ECVI_E2E_DIR": str(workdir), "PYTHONPATH": str(REPO)}
        for name in ("web-metrics", "celery-metrics"):
            (workdir / name).mkdir()
        self.web_port, self.celery_port = free_port(), free_port()
        self.web = ServiceProcess(
            "uvicorn",
            [sys.executable, "-m", "uvicorn", "tests.deploy.backend_app:app", "--host", "127.0.0.1",
             "--port", str(self.web_port), "--workers", "2", "--log-level", "warning"],
            workdir / "uvicorn.log", cwd=REPO,
            env={**base, "PROMETHEUS_MULTIPROC_DIR": str(workdir / "web-metrics")})
        self.worker = ServiceProcess(
            "celery",
            [sys.executable, "-m", "celery", "-A", "tests.deploy.backend_app:celery_app", "worker",
             "--pool", "prefork", "--concurrency", "2", "--loglevel", "WARNING",
             "--without-heartbeat", "--without-gossip", "--without-mingle"],
            workdir / "celery.log", cwd=REPO,
            env={**base, "PROMETHEUS_MULTIPROC_DIR": str(workdir / "celery-metrics"),
                 "ECVI_E2E_CELERY_METRICS_PORT": str(self.celery_port)})
        self.url = f"http://127.0.0.1:{self.web_port}"
        self.celery_metrics = f"http://127.0.0.1:{self.celery_port}/metrics"
        self.publisher = Celery("ecvi-e2e-publisher", set_as_current=False)
        self.publisher.conf.update(celery_config(workdir))

    def start(self) -> None:
        self.web.start()
        self.worker.start()
        _wait_http(f"{self.url}/metrics", self.web)
        _wait_http(self.celery_metrics, self.worker)

    def stop(self) -> None:
        self.web.stop(timeout=10)
        self.worker.stop(timeout=10)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{tail(p)}" for p in (self.web.log_path, self.worker.log_path))


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    backend = Backend(tmp_path)
    try:
        backend.start()
        yield backend
    finally:
        backend.stop()


class Load:
    """Traffic in background threads; each kind can be switched off."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.faults = threading.Event()  # set: errors, slow requests, failing tasks
        self.done = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def _loop(self, step: Callable[[httpx.Client], None], *, faulty: bool, pause: float) -> None:
        with httpx.Client(base_url=self.backend.url, timeout=30) as client:
            while not self.done.is_set():
                if faulty and not self.faults.is_set():
                    time.sleep(0.1)
                    continue
                try:
                    step(client)
                except Exception as exc:  # reported by the test, not lost in a thread
                    self.errors.append(exc)
                    return
                time.sleep(pause)

    def start(self) -> None:
        counter = iter(range(10**9))

        def healthy(client: httpx.Client) -> None:
            assert client.get(f"/api/v1/companies/c{next(counter) % 5}").status_code == 200
            assert client.get("/wp-login.php").status_code == 404

        def failing(client: httpx.Client) -> None:
            assert client.get("/api/v1/fail").status_code == 503

        def slow(client: httpx.Client) -> None:
            assert client.get("/api/v1/slow").status_code == 200

        def tasks(_: httpx.Client) -> None:
            self.backend.publisher.send_task("verify_company", kwargs={"ok": True})
            if self.faults.is_set():
                self.backend.publisher.send_task("verify_company", kwargs={"ok": False})

        plan: list[tuple[Callable[[httpx.Client], None], bool, float]] = [
            (healthy, False, 0.2), (tasks, False, 0.25), (failing, True, 0.1)] + [(slow, True, 0.0)] * 6
        for step, faulty, pause in plan:
            thread = threading.Thread(target=self._loop, args=(step,), kwargs={"faulty": faulty, "pause": pause},
                                      daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(10)


def _active(prometheus: Prometheus) -> dict[str, str]:
    """State (pending/firing) of each backend alert that is active."""
    return {a["labels"]["alertname"]: a["state"] for a in prometheus.alerts()
            if a["labels"]["alertname"] in GUIDE_ALERTS}


def _wait(what: str, check: Callable[[], bool], timeout: float, describe: Callable[[], str]) -> float:
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{what} not reached after {timeout:.0f}s: {describe()}")
        time.sleep(0.5)
    return time.monotonic() - began


@pytest.mark.timeout(300)
def test_backend_alerts_fire_and_resolve_and_panels_have_data(prometheus: Prometheus, backend: Backend) -> None:
    began = time.monotonic()
    prometheus.configure(
        [{"job_name": "ecvi-backend", "static_configs": [{"targets": [f"127.0.0.1:{backend.web_port}"]}]},
         {"job_name": "ecvi-celery", "static_configs": [{"targets": [f"127.0.0.1:{backend.celery_port}"]}]}],
        render_backend_rules())
    prometheus.wait_for_targets_up(2)
    load = Load(backend)
    load.start()

    def report() -> str:
        return f"active={_active(prometheus)} load errors={load.errors[:3]}\n{backend.logs()}"

    try:
        # Healthy traffic and successful tasks alone: nothing fires.
        time.sleep(6)
        assert _active(prometheus) == {}, report()

        load.faults.set()
        with httpx.Client(base_url=backend.url, timeout=10) as client:
            assert client.post("/api/v1/pool/hold").status_code == 200
        fired = _wait("every backend alert firing",
                      lambda: _active(prometheus) == dict.fromkeys(GUIDE_ALERTS, "firing"), 90, report)

        empty = []
        for panel in BOARD["panels"]:
            for target in panel["targets"]:
                if not prometheus.query(target["expr"]):
                    empty.append((panel["title"], target["expr"]))
        assert empty == [], empty

        # Back to healthy: no faults, the pool released, healthy traffic going on.
        load.faults.clear()
        (backend.workdir / "pool-release").touch()
        resolved = _wait("every backend alert resolved", lambda: _active(prometheus) == {}, 90, report)
        assert load.errors == [], load.errors
    finally:
        load.stop()
    print(f"\nprometheus {prometheus.version()}: all four fired after {fired:.1f}s, resolved after "
          f"{resolved:.1f}s; test body {time.monotonic() - began:.1f}s")
