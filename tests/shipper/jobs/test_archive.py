"""archive run on a scripted backend and a directory: layout, idempotence, crashes, conflicts."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shipper import __version__
from shipper.archive.layout import manifest_key
from shipper.archive.manifest import parse_manifest
from shipper.archive.storage.local import LocalStore
from shipper.errors import StorageError
from shipper.jobs.archive import archive_day
from shipper.jobs.verify import verify_day

from ._support import DAY, ScriptedExporter, loki_line, sample_units

NOW = datetime(2025, 2, 13, 3, 0, tzinfo=UTC)


class FlakyStore(LocalStore):
    """Fails the n-th write (1-based), like S3 going away in the middle of a run."""

    def __init__(self, root: Path, fail_on: int) -> None:
        super().__init__(root)
        self.fail_on = fail_on
        self.puts = 0

    def put(self, key: str, data: bytes, sha256: str) -> None:
        self.puts += 1
        if self.puts == self.fail_on:
            raise StorageError(f"{self.describe(key)}: SlowDown", transient=True)
        super().put(key, data, sha256)


def test_archives_a_day_with_manifest_written_last(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    exporter = ScriptedExporter(sample_units(2, 50))
    result = archive_day(exporter, store, DAY, now=NOW)
    assert result.status == "archived", result.error
    assert (result.events, result.objects) == (100, 2)
    manifest = parse_manifest(store.get(manifest_key(DAY)))
    assert manifest.route == "export" and manifest.backend == "loki"
    assert manifest.tool.version == __version__
    assert [o.key for o in manifest.objects] == [
        "stream=0000000000000000/part-00000.ndjson.gz", "stream=0000000000000001/part-00000.ndjson.gz"]
    assert manifest.objects[0].query == {"query": "q-stream=0000000000000000"}
    assert verify_day(store, DAY).ok


def test_a_day_without_data_gets_an_empty_manifest(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    result = archive_day(ScriptedExporter({}), store, DAY, now=NOW)
    assert (result.status, result.events, result.objects) == ("archived", 0, 0)
    assert parse_manifest(store.get(manifest_key(DAY))).objects == []
    assert verify_day(store, DAY).ok


def test_a_verified_day_is_skipped(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    archive_day(ScriptedExporter(sample_units()), store, DAY, now=NOW)
    exporter = ScriptedExporter(sample_units())
    result = archive_day(exporter, store, DAY, now=NOW)
    assert (result.status, result.events) == ("skipped", 100)
    assert exporter.served == 0


def test_objects_are_bounded(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    result = archive_day(ScriptedExporter(sample_units(1, 100)), store, DAY, now=NOW, max_object_bytes=2000)
    manifest = parse_manifest(store.get(manifest_key(DAY)))
    assert result.objects == len(manifest.objects) > 3
    assert all(o.uncompressed_bytes <= 2000 for o in manifest.objects)
    assert manifest.objects[1].key.endswith("/part-00001.ndjson.gz")


@pytest.mark.parametrize("fail_on", [2, 3])
def test_a_storage_failure_leaves_no_manifest_and_the_next_run_resumes(tmp_path: Path, fail_on: int) -> None:
    flaky = FlakyStore(tmp_path, fail_on=fail_on)
    result = archive_day(ScriptedExporter(sample_units(3, 20)), flaky, DAY, now=NOW)
    assert result.status == "failed" and "SlowDown" in result.error
    assert flaky.stat(manifest_key(DAY)) is None
    assert not verify_day(flaky, DAY).ok

    store = LocalStore(tmp_path)
    again = archive_day(ScriptedExporter(sample_units(3, 20)), store, DAY, now=NOW)
    assert again.status == "archived" and again.events == 60
    assert again.reused == fail_on - 1  # what the first run had written is kept as it is
    assert verify_day(store, DAY).ok


def test_a_backend_failure_mid_run_leaves_no_manifest(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    result = archive_day(ScriptedExporter(sample_units(2, 50), fail_after=70), store, DAY, now=NOW)
    assert result.status == "failed" and "went away" in result.error
    assert store.stat(manifest_key(DAY)) is None
    assert archive_day(ScriptedExporter(sample_units(2, 50)), store, DAY, now=NOW).status == "archived"


def test_parts_an_earlier_run_left_behind_are_removed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    crash = ScriptedExporter(sample_units(1, 100), fail_after=90)
    assert archive_day(crash, store, DAY, now=NOW, max_object_bytes=1000).status == "failed"
    assert len(store.list()) > 5
    result = archive_day(ScriptedExporter(sample_units(1, 100)), store, DAY, now=NOW)
    assert result.objects == 1
    assert [o.key.rsplit("/", 1)[1] for o in store.list()] == ["manifest.json", "part-00000.ndjson.gz"]
    assert verify_day(store, DAY).ok


def test_an_archive_that_does_not_verify_is_not_overwritten(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    archive_day(ScriptedExporter(sample_units()), store, DAY, now=NOW)
    victim = store.list("date=2025-01-15/stream=")[0].key
    (tmp_path / victim).write_bytes(b"tampered")
    result = archive_day(ScriptedExporter({}), store, DAY, now=NOW)
    assert result.status == "failed" and "does not verify" in result.error
    assert any(victim in p for p in result.problems)
    assert parse_manifest(store.get(manifest_key(DAY))).events == 100
    forced = archive_day(ScriptedExporter(sample_units()), store, DAY, now=NOW, force=True)
    assert forced.status == "archived" and verify_day(store, DAY).ok


def test_refuses_days_not_over_and_days_past_retention(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    early = archive_day(ScriptedExporter({}), store, DAY, now=datetime(2025, 1, 15, 23, 0, tzinfo=UTC))
    assert early.status == "failed" and "not over" in early.error
    late = datetime(2025, 2, 20, tzinfo=UTC)
    expired = archive_day(ScriptedExporter(sample_units()), store, DAY, now=late, retention=timedelta(days=30))
    assert expired.status == "expired" and "--force" in expired.error
    assert store.list() == []
    es = ScriptedExporter(sample_units(), backend="elasticsearch")
    es.expires_by_age = False  # indices stay until deleted: archiving late is fine
    assert archive_day(es, store, DAY, now=late, retention=timedelta(days=30)).status == "archived"


def test_refuses_to_mix_backends_or_routes_in_one_place(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    archive_day(ScriptedExporter(sample_units()), store, DAY, now=NOW)
    other = archive_day(ScriptedExporter(sample_units(), backend="cloudwatch"), store, DAY, now=NOW)
    assert other.status == "failed" and "archive cloudwatch elsewhere" in other.error

    ingest = LocalStore(tmp_path / "ingest")
    line = loki_line(1, "x")
    ingest.put("date=2025-01-15/hour=01/node=n1/1-abc.ndjson.gz", line, __import__("hashlib").sha256(line).hexdigest())
    mixed = archive_day(ScriptedExporter(sample_units()), ingest, DAY, now=NOW)
    assert mixed.status == "failed" and "hour=01/node=n1" in mixed.error
