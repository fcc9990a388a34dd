"""The service fixtures restart a server on the same endpoint (and, where it persists, the same data)."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.services.aws import Moto
from tests.services.es import Elasticsearch
from tests.services.loki import Loki

pytestmark = pytest.mark.integration


def _refused(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.ConnectError:
        return True
    return False


def test_loki_restart_keeps_port_and_data(loki: Loki) -> None:
    run = uuid.uuid4().hex[:12]
    now = time.time_ns()
    loki.push([{"stream": {"app": "ecvi-restart", "run": run}, "values": [[str(now), "before restart"]]}])
    query = f'{{app="ecvi-restart", run="{run}"}}'
    assert len(loki.wait_for_entries(query, 1, start_ns=now - 1_000_000_000)) == 1
    url = loki.url

    loki.stop()
    assert _refused(f"{url}/ready")
    loki.start()

    assert loki.url == url
    found = loki.wait_for_entries(query, 1, start_ns=now - 1_000_000_000)
    assert [line for _, line, _ in found] == ["before restart"]


def test_elasticsearch_restart_keeps_port_and_data(es: Elasticsearch) -> None:
    index = f"ecvi-restart-{uuid.uuid4().hex[:8]}"
    with es.client() as client:
        client.index(index=index, id="1", document={"message": "before restart"}, refresh=True)
    url = es.url

    es.stop()
    assert _refused(url)
    es.start()

    assert es.url == url
    with es.client() as client:
        assert client.get(index=index, id="1")["_source"] == {"message": "before restart"}
        client.indices.delete(index=index)


def test_moto_restart_keeps_endpoint(aws: Moto) -> None:
    url = aws.url
    aws.stop(kill=True)
    assert _refused(url)
    aws.start()

    assert aws.url == url
    aws.client("s3").create_bucket(Bucket=f"ecvi-restart-{uuid.uuid4().hex[:8]}")
