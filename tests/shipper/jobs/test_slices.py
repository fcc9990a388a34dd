"""A day split across workers (an Indexed Job), merged only when every slice is there; threads within one."""

from datetime import UTC, datetime
from pathlib import Path

import click
import orjson
from click.testing import CliRunner

from shipper.archive.layout import manifest_key
from shipper.archive.manifest import parse_manifest
from shipper.archive.storage.local import LocalStore
from shipper.jobs import cli as jobs_cli
from shipper.jobs import endpoints as endpoints_mod
from shipper.jobs.archive import archive_day
from shipper.jobs.slices import export_slice, slice_of
from shipper.jobs.verify import verify_day

from ._support import DAY, ScriptedExporter, sample_units

NOW = datetime(2025, 1, 16, 3, tzinfo=UTC)


def _objects(store: LocalStore) -> list[tuple[str, str, int]]:
    return [(o.key, o.sha256, o.events) for o in parse_manifest(store.get(manifest_key(DAY))).objects]


def test_three_workers_make_the_same_archive_as_one(tmp_path: Path) -> None:
    data = sample_units(7, 30)
    single = LocalStore(tmp_path / "one")
    archive_day(ScriptedExporter(data), single, DAY, now=NOW)
    store = LocalStore(tmp_path / "three")
    assert {slice_of(u, 3) for u in data} == {0, 1, 2}  # the split actually splits
    for index in (2, 0):
        r = export_slice(ScriptedExporter(data), store, DAY, index=index, slices=3, now=NOW, max_object_bytes=1 << 20)
        assert (r.status, r.verified) == ("pending", False) and "1 of 3" in r.error
        assert store.stat(manifest_key(DAY)) is None  # no manifest while a slice is missing
    last = export_slice(ScriptedExporter(data), store, DAY, index=1, slices=3, now=NOW, max_object_bytes=1 << 20)
    assert (last.status, last.verified, last.events) == ("archived", True, 210)
    assert _objects(store) == _objects(single)
    assert parse_manifest(store.get(manifest_key(DAY))).source["slices"] == 3
    assert verify_day(store, DAY).ok and not verify_day(store, DAY).warnings  # slice manifests removed
    again = export_slice(ScriptedExporter(data), store, DAY, index=0, slices=3, now=NOW, max_object_bytes=1 << 20)
    assert (again.status, again.verified) == ("skipped", True)


def test_a_failed_slice_keeps_the_day_unarchived_until_it_succeeds(tmp_path: Path) -> None:
    data = sample_units(4, 30)
    store = LocalStore(tmp_path)
    owner = {u: slice_of(u, 2) for u in data}
    first_of_1 = sorted(u for u, i in owner.items() if i == 1)[0]
    assert export_slice(ScriptedExporter(data), store, DAY, index=0, slices=2, now=NOW,
                        max_object_bytes=1 << 20).status == "pending"
    broken = ScriptedExporter({first_of_1: data[first_of_1]}, fail_after=5)
    failed = export_slice(broken, store, DAY, index=1, slices=2, now=NOW, max_object_bytes=1 << 20)
    assert failed.status == "failed" and "went away" in failed.error
    assert store.stat(manifest_key(DAY)) is None
    ok = export_slice(ScriptedExporter(data), store, DAY, index=1, slices=2, now=NOW, max_object_bytes=1 << 20)
    assert ok.status == "archived" and verify_day(store, DAY).ok


def test_concurrent_units_write_the_same_archive(tmp_path: Path) -> None:
    data = sample_units(6, 40)
    one, four = LocalStore(tmp_path / "1"), LocalStore(tmp_path / "4")
    archive_day(ScriptedExporter(data), one, DAY, now=NOW, max_object_bytes=1500)
    result = archive_day(ScriptedExporter(data), four, DAY, now=NOW, max_object_bytes=1500, concurrency=4)
    assert result.status == "archived" and _objects(four) == _objects(one)


def test_indexed_job_workers_take_their_index_from_the_environment(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    data = sample_units(5, 10)
    monkeypatch.setattr(endpoints_mod, "open_exporter", lambda *a, **kw: ScriptedExporter(data))
    group = click.Group("ecvi-logs")
    for command in jobs_cli.COMMANDS:
        group.add_command(command)
    args = ["archive", "run", "--backend", "loki", "--day", DAY.isoformat(), "--to", tmp_path.as_uri(),
            "--days", "3653", "--slices", "2", "--concurrency", "2", "--json"]
    statuses = []
    for index in ("1", "0"):
        out = CliRunner().invoke(group, args, env={"JOB_COMPLETION_INDEX": index}, catch_exceptions=False)
        assert out.exit_code == 0, out.output
        statuses.append(orjson.loads(out.output)["days"][0]["status"])
    assert statuses == ["pending", "archived"]
    bad = CliRunner().invoke(group, args, env={"JOB_COMPLETION_INDEX": "2"}, catch_exceptions=False)
    assert bad.exit_code == 2
