"""Archive throughput from each backend (events/s, MiB/s of archived lines), printed for the record.

    .venv/bin/pytest -m integration tests/shipper/jobs/test_throughput.py -s

``ECVI_ARCHIVE_BENCH_EVENTS`` sets the events per backend (default 20000; CloudWatch gets half, moto
is slow to ingest). The numbers go to docs/operations.md.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.archive.storage.local import LocalStore
from shipper.jobs.seal import seal_day
from shipper.sinks.cloudwatch.config import CloudWatchSinkConfig
from shipper.sinks.cloudwatch.sink import CloudWatchSink
from shipper.sinks.elasticsearch.config import ElasticsearchSinkConfig
from shipper.sinks.elasticsearch.sink import ElasticsearchSink
from shipper.sinks.loki.config import LokiSinkConfig
from shipper.sinks.loki.sink import LokiSink
from shipper.sinks.s3.config import S3SinkConfig
from shipper.sinks.s3.sink import S3Sink
from tests.services.aws import Moto
from tests.services.es import Elasticsearch
from tests.services.loki import Loki

from ._integration import cli, days_ago, loki_flush, make_events, ship

pytestmark = pytest.mark.integration

EVENTS = int(os.environ.get("ECVI_ARCHIVE_BENCH_EVENTS", "20000"))


def _report(capsys: pytest.CaptureFixture[str], backend: str, summary: dict[str, Any]) -> None:
    day = summary["days"][0]
    line = (f"archive throughput {backend:>13}: {day['events']} events, {day['uncompressed_bytes'] / 1048576:.1f} MiB "
            f"-> {day['bytes'] / 1048576:.2f} MiB gzip in {day['seconds']:.2f}s: "
            f"{day['events_per_second']:.0f} events/s, {day['mib_per_second']:.2f} MiB/s")
    with capsys.disabled():
        print("\n" + line)


def _archive(backend: str, flags: list[str], tmp_path: Path, n: int) -> dict[str, Any]:
    result = cli("archive", "run", "--backend", backend, *flags, "--day", days_ago(2).isoformat(),
                 "--to", (tmp_path / "archive").as_uri(), "--json")
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.output)
    assert summary["events"] == n
    return summary


def test_loki(loki: Loki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = uuid.uuid4().hex[:8]
    events = make_events(EVENTS, [days_ago(2)], run)
    config = LokiSinkConfig.model_validate({
        "type": "loki", "inputs": ["app"], "endpoint": loki.url, "healthcheck": False,
        "labels": {"service": "{{ service }}", "level": "{{ level }}", "run": run},
        "batch": {"max_events": 2000, "max_bytes": 2 * 1048576}})
    ship(LokiSink("loki", config, str(tmp_path)), config, events, tmp_path / "ship")
    loki_flush(loki.url)
    summary = _archive("loki", ["--loki-url", loki.url, "--selector", f'{{run="{run}"}}'], tmp_path, EVENTS)
    _report(capsys, "loki", summary)


def test_elasticsearch(es: Elasticsearch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = f"ecvi-bench-{uuid.uuid4().hex[:8]}"
    index = f"{prefix}-%Y.%m.%d"
    config = ElasticsearchSinkConfig.model_validate({
        "type": "elasticsearch", "inputs": ["app"], "endpoint": es.url, "index": index, "healthcheck": False,
        "batch": {"max_events": 2000, "max_bytes": 5 * 1048576}})
    ship(ElasticsearchSink("es", config, str(tmp_path)), config, make_events(EVENTS, [days_ago(2)], prefix),
         tmp_path / "ship")
    with es.client() as client:
        client.indices.refresh(index=f"{prefix}-*")
    try:
        summary = _archive("elasticsearch", ["--es-url", es.url, "--index", index], tmp_path, EVENTS)
    finally:
        with es.client() as client:
            client.indices.delete(index=days_ago(2).strftime(index))
            client.options(ignore_status=404).indices.delete_index_template(name=prefix)
    _report(capsys, "elasticsearch", summary)


def test_cloudwatch(aws_env: Moto, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = uuid.uuid4().hex[:8]
    n = EVENTS // 2
    config = CloudWatchSinkConfig.model_validate({
        "type": "cloudwatch", "inputs": ["app"], "region": "us-east-1", "healthcheck": False,
        "group": f"/ecvi-bench/{run}/{{{{ service }}}}", "stream": "{{ kubernetes.pod_name }}",
        "batch": {"max_events": 5000, "max_bytes": 1048576}})
    ship(CloudWatchSink("cw", config, str(tmp_path)), config, make_events(n, [days_ago(2)], run), tmp_path / "ship")
    summary = _archive("cloudwatch", ["--cw-prefix", f"/ecvi-bench/{run}/", "--region", "us-east-1"], tmp_path, n)
    _report(capsys, "cloudwatch", summary)


@pytest.mark.anyio
async def test_ingest_seal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The other route: the s3 sink's write rate, and sealing what it wrote (to a directory)."""
    events = make_events(EVENTS, [days_ago(2)], "seal")
    config = S3SinkConfig.model_validate({"type": "s3", "inputs": ["app"], "url": (tmp_path / "a").as_uri(),
                                          "node": "bench", "healthcheck": False})
    sink = S3Sink("archive", config, str(tmp_path))
    began = time.monotonic()
    for i in range(0, len(events), 20000):
        outcome = await sink.send(events[i:i + 20000])
        assert not outcome.retry and not outcome.rejected
    took = time.monotonic() - began
    raw = sum(len(e.raw) for e in events)
    result = seal_day(LocalStore(tmp_path / "a"), days_ago(2), now=datetime.now(UTC))
    assert result.status == "sealed" and result.events == EVENTS
    with capsys.disabled():
        print(f"\narchive throughput    s3 sink: {EVENTS} events, {raw / 1048576:.1f} MiB raw lines in {took:.2f}s: "
              f"{EVENTS / took:.0f} events/s, {raw / took / 1048576:.2f} MiB/s")
    _report(capsys, "seal", {"days": [result.to_json()]})
