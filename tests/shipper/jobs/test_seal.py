"""archive seal over what the s3 sink wrote, then verify and restore like any archive."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from shipper.archive.layout import manifest_key
from shipper.archive.manifest import parse_manifest
from shipper.archive.objects import gzip_bytes, sha256_hex
from shipper.archive.storage.local import LocalStore
from shipper.jobs.seal import seal_day
from shipper.jobs.verify import verify_day
from shipper.sinks.s3.sink import S3Sink
from tests.shipper.sinks.s3._support import DAY0_NS, HOUR_NS, make_config, make_event

from ._support import DAY

NOW = datetime(2025, 1, 16, 2, tzinfo=UTC)


async def _ingest(root: Path, n: int = 300, node: str = "node-a") -> None:
    sink = S3Sink("archive", make_config(root.as_uri(), node=node), str(root))
    events = [make_event(i, DAY0_NS + i * (24 * HOUR_NS // n)) for i in range(n)]
    for i in range(0, n, 40):
        outcome = await sink.send(events[i:i + 40])
        assert not outcome.retry and not outcome.rejected


@pytest.mark.anyio
async def test_seal_then_verify(tmp_path: Path) -> None:
    await _ingest(tmp_path)
    await _ingest(tmp_path, 30, node="node-b")
    store = LocalStore(tmp_path)
    result = seal_day(store, DAY, now=NOW)
    assert (result.status, result.events) == ("sealed", 330)
    manifest = parse_manifest(store.get(manifest_key(DAY)))
    assert manifest.route == "ingest"
    assert {o.unit.split("/")[1] for o in manifest.objects} == {"node=node-a", "node=node-b"}
    assert all(o.unit.startswith("hour=") and o.query is None for o in manifest.objects)
    assert verify_day(store, DAY).ok
    assert seal_day(store, DAY, now=NOW).status == "skipped"


@pytest.mark.anyio
async def test_late_objects_are_reported_then_sealed_again(tmp_path: Path) -> None:
    await _ingest(tmp_path, 40)
    store = LocalStore(tmp_path)
    seal_day(store, DAY, now=NOW)
    await _ingest(tmp_path, 5, node="late")
    report = verify_day(store, DAY)
    assert report.ok and len(report.warnings) == 5  # one object per hour of the late events
    assert all("node=late" in w.key and "seal the day again" in w.message for w in report.warnings)
    assert seal_day(store, DAY, now=NOW).events == 45
    assert not verify_day(store, DAY).warnings


@pytest.mark.anyio
async def test_damaged_or_vanished_objects_are_not_sealed_over(tmp_path: Path) -> None:
    await _ingest(tmp_path, 80)
    store = LocalStore(tmp_path)
    bad_key = "date=2025-01-15/hour=05/node=x/1-bad.ndjson.gz"
    bad = gzip_bytes(b'{"ts_ns": 1736917200000000000, "line": "ok"}\n{broken\n')
    store.put(bad_key, bad, sha256_hex(bad))
    result = seal_day(store, DAY, now=NOW)
    assert result.status == "failed" and "hour=05/node=x/1-bad.ndjson.gz" in result.error
    store.delete(bad_key)
    assert seal_day(store, DAY, now=NOW).status == "sealed"
    gone = store.list("date=2025-01-15/hour=")[0].key
    store.delete(gone)
    refused = seal_day(store, DAY, now=NOW)
    assert refused.status == "failed" and gone in refused.error
    assert seal_day(store, DAY, now=NOW, force=True).status == "sealed"


def test_an_empty_day_seals_to_an_empty_manifest(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert seal_day(store, DAY, now=NOW).status == "sealed"
    assert parse_manifest(store.get(manifest_key(DAY))).events == 0
    assert seal_day(store, DAY, now=datetime(2025, 1, 15, 12, tzinfo=UTC)).status == "failed"
