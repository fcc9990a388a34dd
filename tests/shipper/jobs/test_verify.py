"""archive verify: every problem names its object."""

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import orjson

from shipper.archive.layout import manifest_key
from shipper.archive.objects import gzip_bytes
from shipper.archive.storage.local import LocalStore
from shipper.jobs.archive import archive_day
from shipper.jobs.verify import verify_day

from ._support import DAY, DAY_START, ScriptedExporter, loki_line, sample_units

NOW = datetime(2025, 2, 13, tzinfo=UTC)


def _archived(tmp_path: Path) -> tuple[LocalStore, str]:
    store = LocalStore(tmp_path)
    assert archive_day(ScriptedExporter(sample_units()), store, DAY, now=NOW).status == "archived"
    return store, store.list("date=2025-01-15/stream=")[0].key


def test_a_tampered_object_fails_with_its_name(tmp_path: Path) -> None:
    store, key = _archived(tmp_path)
    # A careful forger: valid gzip, valid lines, same count. The checksum still gives it away.
    forged = gzip_bytes(b"".join(loki_line(DAY_START + i, f"forged {i}") for i in range(50)))
    (tmp_path / key).write_bytes(forged)
    report = verify_day(store, DAY)
    assert not report.ok
    assert {p.key for p in report.problems} == {key}
    assert any("SHA-256" in str(p) for p in report.problems)
    quick = verify_day(store, DAY, deep=False)
    assert not quick.ok and quick.problems[0].key == key


def test_counts_and_damage_are_reported(tmp_path: Path) -> None:
    store, key = _archived(tmp_path)
    (tmp_path / key).write_bytes(gzip_bytes(b'{"ts_ns": 1}\n'))
    messages = [p.message for p in verify_day(store, DAY).problems]
    assert any("holds 1 events, the manifest says 50" in m for m in messages)
    assert any("outside 2025-01-15" in m for m in messages)
    (tmp_path / key).write_bytes(b"not gzip at all")
    assert any("not valid gzip" in p.message for p in verify_day(store, DAY).problems)


def test_missing_objects_manifests_and_extra_objects(tmp_path: Path) -> None:
    store, key = _archived(tmp_path)
    extra = "date=2025-01-15/stream=ffff/part-00000.ndjson.gz"
    store.put(extra, b"x", hashlib.sha256(b"x").hexdigest())
    report = verify_day(store, DAY)
    assert report.ok and [w.key for w in report.warnings] == [extra]
    store.delete(key)
    assert [str(p) for p in verify_day(store, DAY).problems] == [f"{key}: missing"]
    store.delete(manifest_key(DAY))
    report = verify_day(store, DAY)
    assert not report.ok and report.problems[0].key == manifest_key(DAY)
    assert "missing" in report.problems[0].message


def test_a_damaged_manifest_is_a_problem(tmp_path: Path) -> None:
    store, _ = _archived(tmp_path)
    doc = orjson.loads(store.get(manifest_key(DAY)))
    doc["events"] += 1
    data = orjson.dumps(doc)
    store.put(manifest_key(DAY), data, hashlib.sha256(data).hexdigest())
    report = verify_day(store, DAY)
    assert not report.ok and "objects add up to 100" in report.problems[0].message


def test_compares_with_the_backend_per_unit(tmp_path: Path) -> None:
    store, _ = _archived(tmp_path)
    backend = ScriptedExporter(sample_units())
    report = verify_day(store, DAY, exporter=backend)
    assert report.ok and report.backend_counts == {"stream=0000000000000000": 50, "stream=0000000000000001": 50}
    late = sample_units()
    late["stream=0000000000000001"].append((DAY_START + 1, loki_line(DAY_START + 1, "late")))
    report = verify_day(store, DAY, exporter=ScriptedExporter(late))
    assert [str(p) for p in report.problems] == [
        "date=2025-01-15/stream=0000000000000001: the backend has 51 events, the archive 50"]
