"""Late lines: an archived day that gains lines in the backend is exported again as a new version."""

from datetime import UTC, datetime
from pathlib import Path

from shipper.archive.layout import manifest_key
from shipper.archive.manifest import parse_manifest
from shipper.archive.storage.local import LocalStore
from shipper.jobs.archive import archive_day
from shipper.jobs.verify import kept_versions, read_manifest, verify_day

from ._support import DAY, DAY_END, ScriptedExporter, loki_line, sample_units

NOW = datetime(2025, 1, 16, 3, 0, tzinfo=UTC)


def _with_late_lines(units: dict, n: int, unit: str = "stream=0000000000000001") -> dict:
    out = {k: list(v) for k, v in units.items()}
    late = [(DAY_END - 1000 - i, loki_line(DAY_END - 1000 - i, f"late {i}", service="s1")) for i in range(n)]
    out[unit] = sorted(out.get(unit, []) + late)
    return out


def test_an_unchanged_day_is_checked_and_skipped(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert archive_day(ScriptedExporter(sample_units()), store, DAY, now=NOW).status == "archived"
    exporter = ScriptedExporter(sample_units())
    result = archive_day(exporter, store, DAY, now=NOW)
    assert (result.status, result.verified, result.version, result.changed_units) == ("skipped", True, 1, [])
    assert result.late_check_seconds is not None and exporter.served == 0
    assert result.to_json()["rearchive_pending"] is False


def test_late_lines_make_a_new_version_and_the_old_one_stays_verifiable(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    first = archive_day(ScriptedExporter(sample_units()), store, DAY, now=NOW)
    v1_keys = {o.key for o in store.list()}
    result = archive_day(ScriptedExporter(_with_late_lines(sample_units(), 7)), store, DAY, now=NOW)
    assert (result.status, result.version, result.events) == ("rearchived", 2, first.events + 7), result.error
    assert (result.changed_units, result.late_events, result.verified) == (["stream=0000000000000001"], 7, True)
    assert v1_keys <= {o.key for o in store.list()}  # nothing of version 1 was touched or removed
    assert kept_versions(store, DAY) == [1, 2]
    current = parse_manifest(store.get(manifest_key(DAY)))
    assert current.version == 2 and all(o.key.startswith("v2/") for o in current.objects)
    old = read_manifest(store, DAY, 1)
    assert old is not None and (old.version, old.events) == (1, first.events)
    for version in (None, 1, 2):
        report = verify_day(store, DAY, version=version)
        assert report.ok and not report.warnings, (version, report.problems, report.warnings)

    third = archive_day(ScriptedExporter(_with_late_lines(sample_units(), 9)), store, DAY, now=NOW)
    assert (third.status, third.version, third.late_events) == ("rearchived", 3, 2)
    assert kept_versions(store, DAY) == [1, 2, 3]
    assert all(verify_day(store, DAY, version=v).ok for v in (1, 2, 3))


def test_a_failed_re_archive_keeps_the_old_version_and_is_pending(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    archive_day(ScriptedExporter(sample_units()), store, DAY, now=NOW)
    late = _with_late_lines(sample_units(), 5)
    failed = archive_day(ScriptedExporter(late, fail_after=60), store, DAY, now=NOW)
    assert (failed.status, failed.verified, failed.rearchive_pending) == ("failed", True, True)
    assert "went away" in failed.error
    assert parse_manifest(store.get(manifest_key(DAY))).version == 1 and verify_day(store, DAY).ok
    again = archive_day(ScriptedExporter(late), store, DAY, now=NOW)
    assert (again.status, again.version, again.rearchive_pending) == ("rearchived", 2, False)
    assert verify_day(store, DAY, version=1).ok and verify_day(store, DAY).ok


def test_fewer_events_in_the_backend_never_replace_the_archive(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    archive_day(ScriptedExporter(sample_units()), store, DAY, now=NOW)
    shrunk = sample_units()
    shrunk["stream=0000000000000000"] = shrunk["stream=0000000000000000"][:10]
    result = archive_day(ScriptedExporter(shrunk), store, DAY, now=NOW)
    assert (result.status, result.version, result.events) == ("skipped", 1, 100)
    assert any("the backend now has 10 events, the archive 50" in p for p in result.problems)
    assert kept_versions(store, DAY) == []


def test_a_late_check_that_cannot_count_fails_the_run_but_the_day_stays_verified(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    archive_day(ScriptedExporter(sample_units()), store, DAY, now=NOW)

    class Down(ScriptedExporter):
        def counts(self, day):  # type: ignore[no-untyped-def]
            from shipper.errors import BackendError
            raise BackendError("loki.test: 503")

    result = archive_day(Down(sample_units()), store, DAY, now=NOW)
    assert (result.status, result.verified, result.rearchive_pending) == ("failed", True, False)
    assert "503" in result.error
