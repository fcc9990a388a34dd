"""Smoke tests: write through each real backend's API and read the data back."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid

import pytest
from elasticsearch import helpers

from tests.services.aws import Moto
from tests.services.es import Elasticsearch
from tests.services.loki import Loki

pytestmark = pytest.mark.integration


def test_loki_push_and_query_range(loki: Loki) -> None:
    run = uuid.uuid4().hex[:12]
    now = time.time_ns()
    values: list[list[object]] = [
        [str(now - 3_000_000), f"first {run}"],
        [str(now - 2_000_000), f"second {run}", {"trace_id": "abc123"}],
        [str(now - 1_000_000), f"third {run}"],
    ]
    loki.push([{"stream": {"app": "ecvi-smoke", "run": run}, "values": values}])

    found = loki.wait_for_entries(f'{{app="ecvi-smoke", run="{run}"}}', 3, start_ns=now - 60_000_000_000)

    assert [line for _, line, _ in found] == [f"first {run}", f"second {run}", f"third {run}"]
    assert [ts for ts, _, _ in found] == [now - 3_000_000, now - 2_000_000, now - 1_000_000]
    assert all(labels["app"] == "ecvi-smoke" for _, _, labels in found)
    assert found[1][2].get("trace_id") == "abc123"
    assert "trace_id" not in found[0][2]


def test_elasticsearch_bulk_and_search(es: Elasticsearch) -> None:
    index = f"ecvi-smoke-{uuid.uuid4().hex[:8]}"
    docs = [{"_index": index, "_id": f"doc-{i}", "message": f"line {i}", "n": i} for i in range(3)]
    with es.client() as client:
        ok, errors = helpers.bulk(client, docs)
        assert (ok, errors) == (3, [])
        client.indices.refresh(index=index)
        hits = client.search(index=index, query={"match_all": {}}, sort=[{"n": "asc"}])["hits"]
        assert hits["total"]["value"] == 3
        assert [h["_id"] for h in hits["hits"]] == ["doc-0", "doc-1", "doc-2"]
        assert [h["_source"]["message"] for h in hits["hits"]] == ["line 0", "line 1", "line 2"]
        client.indices.delete(index=index)


def test_cloudwatch_logs_put_and_get(aws: Moto) -> None:
    logs = aws.client("logs")
    group, stream = f"/ecvi/smoke/{uuid.uuid4().hex[:8]}", "node-1"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now_ms = int(time.time() * 1000)
    events = [{"timestamp": now_ms + i, "message": f"event {i}"} for i in range(3)]
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)

    got = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]

    assert [(e["timestamp"], e["message"]) for e in got] == [(e["timestamp"], e["message"]) for e in events]


def test_s3_put_with_sha256_checksum(aws: Moto) -> None:
    s3 = aws.client("s3")
    bucket, key = f"ecvi-smoke-{uuid.uuid4().hex[:8]}", "logs/2024/01/01/batch.jsonl.gz"
    body = b'{"message": "hello"}\n' * 100
    expected = base64.b64encode(hashlib.sha256(body).digest()).decode()
    s3.create_bucket(Bucket=bucket)

    put = s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256")
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")

    assert put["ChecksumSHA256"] == expected
    assert got["Body"].read() == body
    assert got["ChecksumSHA256"] == expected
