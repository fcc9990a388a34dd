"""Archive at ingest: the s3 sink on moto, sealed, verified, and restored into Elasticsearch and Loki."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import orjson
import pytest

from shipper.buffer import DiskBuffer
from shipper.event import Event
from shipper.sinks._common.driver import SinkDriver
from shipper.sinks.elasticsearch.encoder import build_document
from shipper.sinks.s3.config import S3SinkConfig
from shipper.sinks.s3.sink import S3Sink
from tests.services.aws import Moto
from tests.services.es import Elasticsearch
from tests.services.loki import Loki

from ._integration import cli, days_ago, loki_flush, make_events, on_day

pytestmark = pytest.mark.integration


def _run_shipper_sink(config: S3SinkConfig, events: list[Event], workdir: Path) -> S3Sink:
    """The sink behind its disk buffer and driver workers, as ``ecvi-logs ship`` runs it."""

    async def go() -> S3Sink:
        sink = S3Sink("archive", config, str(workdir))
        buffer = DiskBuffer(workdir / "buffer", "archive")
        driver = SinkDriver(sink, buffer, config, str(workdir))
        await driver.start()
        for i in range(0, len(events), 250):
            assert await buffer.append(events[i:i + 250])
        deadline = time.monotonic() + 60
        while buffer.pending_events and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await driver.stop(10)
        assert not driver.dead.path.exists()
        return sink

    return asyncio.run(go())


def test_ingest_seal_verify_restore(aws_env: Moto, es: Elasticsearch, loki: Loki, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    bucket = f"ecvi-ingest-{run}"
    aws_env.client("s3").create_bucket(Bucket=bucket)
    days = [days_ago(2), days_ago(1)]
    events = make_events(2000, days, run, seed=9)
    config = S3SinkConfig.model_validate({
        "type": "s3", "inputs": ["app"], "url": f"s3://{bucket}/ingest", "region": "us-east-1", "node": "node-1",
        "healthcheck": False, "batch": {"max_events": 400, "timeout_secs": 0.2}})
    sink = _run_shipper_sink(config, events, tmp_path / "n1")
    s3 = aws_env.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, MaxKeys=1000)["Contents"])
    assert all(k.startswith(f"ingest/date={days[0]}/hour=") or k.startswith(f"ingest/date={days[1]}/hour=")
               for k in keys)
    assert all("/node=node-1/" in k for k in keys)

    # A batch sent again (a retry, a replay after a crash) lands on the object it wrote the first time.
    def count() -> int:
        return len(s3.list_objects_v2(Bucket=bucket, MaxKeys=1000)["Contents"])

    batch = on_day(events, days[0])[:300]
    asyncio.run(sink.send(batch))
    once = count()
    asyncio.run(sink.send(list(reversed(batch))))
    assert count() == once >= len(keys)

    day = days[0]
    expected = on_day(events, day)
    root = f"s3://{bucket}/ingest"
    sealed = cli("archive", "seal", "--day", day.isoformat(), "--to", root, "--json")
    assert sealed.exit_code == 0, sealed.output
    # The extra batch overlaps what the driver wrote: where it cut an hour the same way it overwrote
    # that object, elsewhere it added duplicates. Never losses.
    assert len(expected) <= orjson.loads(sealed.output)["events"] < len(expected) + len(batch)
    assert cli("archive", "verify", "--day", day.isoformat(), "--from", root).exit_code == 0

    restored = cli("archive", "restore", "--day", day.isoformat(), "--from", root, "--to", "elasticsearch",
                   "--endpoint", es.url, "--index", f"restored-{run}", "--data-dir", str(tmp_path / "dl"), "--json")
    assert restored.exit_code == 0, restored.output
    with es.client() as client:
        client.indices.refresh(index=f"restored-{run}")
        hits = client.search(index=f"restored-{run}", size=10000, query={"match_all": {}})["hits"]["hits"]
        client.indices.delete(index=f"restored-{run}")
    # The same ids and documents the live elasticsearch sink writes: duplicates collapse on restore.
    assert {h["_id"]: h["_source"] for h in hits} == {e.id: build_document(e) for e in expected}

    to_loki = cli("archive", "restore", "--day", day.isoformat(), "--from", root, "--to", "loki",
                  "--endpoint", loki.url, "--label", f"restored={run}", "--data-dir", str(tmp_path / "dl"))
    assert to_loki.exit_code == 0, to_loki.output
    loki_flush(loki.url)
    start = min(e.ts_ns for e in expected)
    # Old lines become queryable as the ingester flushes them: poll until all are there.
    found = loki.wait_for_entries(f'{{restored="{run}"}}', len(expected), start, start + 86_400 * 10**9)
    assert sorted((ts, line) for ts, line, _ in found) == sorted((e.ts_ns, e.raw) for e in expected)
    assert {labels["service"] for _, _, labels in found} == {"api", "worker"}

    key = next(k for k in keys if k.startswith(f"ingest/date={day}/"))
    s3.put_object(Bucket=bucket, Key=key, Body=b"\x1f\x8b tampered", ChecksumAlgorithm="SHA256")
    bad = cli("archive", "verify", "--day", day.isoformat(), "--from", root)
    assert bad.exit_code == 1 and key.removeprefix("ingest/") in bad.output
