"""pytest fixtures starting real backend services on 127.0.0.1 (no Docker needed).

Session-scoped: `loki_service`, `es_service`, `aws_service`, `prometheus_service`, `kube_service`
(kube-apiserver over etcd) start one server each, on first use. Function-scoped: `loki`, `es`, `aws`,
`prometheus`, `kube` return the same object after restarting it if a test left it stopped; `aws_env`
points AWS SDK environment variables at moto for the duration of one test.

Environment:
  LOKI_URL, ES_URL, AWS_ENDPOINT_URL   use that server and start nothing (stop() then skips)
  KUBE_API_URL + KUBE_API_TOKEN        the same for Kubernetes (an admin token; KUBE_API_CA: its CA file)
  CI=true                              a service that cannot start fails its tests (else: skip)
  ECVI_KEEP_SERVICE_DIRS=1             keep data and logs even when every test passed
  ECVI_CACHE_DIR, PROMETHEUS_BINARY, PROMETHEUS_VERSION, LOKI_BINARY, LOKI_VERSION, ES_HOME,
  ES_VERSION, ES_JAVA_HOME, ES_TEST_JAVA_OPTS, KUBE_APISERVER_BINARY, KUBE_APISERVER_VERSION, ETCD_BINARY,
  ETCD_VERSION
A Docker engine is not used (no testcontainers variant).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from tests.services._process import ServiceError, ci
from tests.services._service import Service
from tests.services.aws import Moto
from tests.services.es import Elasticsearch
from tests.services.kube import KubeAPIServer
from tests.services.loki import Loki
from tests.services.prometheus import Prometheus

S = TypeVar("S", bound=Service)

_started: list[Service] = []
_kept: list[Service] = []


def _unavailable(service: Service, reason: str) -> None:
    message = f"{service.name} unavailable: {reason}"
    if ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _ensure_running(service: Service, *, check_external: bool = False) -> None:
    if service.running and not (service.external and check_external):
        return
    try:
        service.start()
        return
    except ServiceError as exc:
        reason = str(exc)
    _unavailable(service, reason)


def _session_service(request: pytest.FixtureRequest, make: Callable[[], S]) -> Iterator[S]:
    service = make()
    _started.append(service)
    failed = True
    try:
        _ensure_running(service, check_external=True)
        failed = False
        yield service
    finally:
        keep = failed or request.session.testsfailed > 0 or bool(os.environ.get("ECVI_KEEP_SERVICE_DIRS"))
        service.close(keep=keep)
        if keep and service.workdir is not None:
            _kept.append(service)


@pytest.fixture(scope="session")
def loki_service(request: pytest.FixtureRequest) -> Iterator[Loki]:
    yield from _session_service(request, lambda: Loki(url=os.environ.get("LOKI_URL")))


@pytest.fixture(scope="session")
def es_service(request: pytest.FixtureRequest) -> Iterator[Elasticsearch]:
    yield from _session_service(request, lambda: Elasticsearch(url=os.environ.get("ES_URL")))


@pytest.fixture(scope="session")
def aws_service(request: pytest.FixtureRequest) -> Iterator[Moto]:
    yield from _session_service(request, lambda: Moto(url=os.environ.get("AWS_ENDPOINT_URL")))


@pytest.fixture(scope="session")
def prometheus_service(request: pytest.FixtureRequest) -> Iterator[Prometheus]:
    yield from _session_service(request, Prometheus)


@pytest.fixture(scope="session")
def kube_service(request: pytest.FixtureRequest) -> Iterator[KubeAPIServer]:
    yield from _session_service(request, lambda: KubeAPIServer(
        url=os.environ.get("KUBE_API_URL"), token=os.environ.get("KUBE_API_TOKEN"),
        ca_file=os.environ.get("KUBE_API_CA")))


@pytest.fixture
def loki(loki_service: Loki) -> Loki:
    _ensure_running(loki_service)
    return loki_service


@pytest.fixture
def es(es_service: Elasticsearch) -> Elasticsearch:
    _ensure_running(es_service)
    return es_service


@pytest.fixture
def aws(aws_service: Moto) -> Moto:
    _ensure_running(aws_service)
    return aws_service


@pytest.fixture
def prometheus(prometheus_service: Prometheus) -> Prometheus:
    _ensure_running(prometheus_service)
    return prometheus_service


@pytest.fixture
def kube(kube_service: KubeAPIServer) -> KubeAPIServer:
    _ensure_running(kube_service)
    return kube_service


@pytest.fixture
def aws_env(aws: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in aws.env().items():
        monkeypatch.setenv(key, value)
    return aws


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _started:
        return
    terminalreporter.section("real services")
    for service in _started:
        if service.external:
            terminalreporter.write_line(f"{service.name}: external {service.url}")
            continue
        times = ", ".join(f"{t:.1f}s" for t in service.start_seconds)
        state = f"start-up {times}" if times else "did not start"
        terminalreporter.write_line(f"{service.name}: {service.url or '-'} {state}")
    for service in _kept:
        terminalreporter.write_line(f"{service.name}: data and log kept in {service.workdir} ({service.log_path})")
