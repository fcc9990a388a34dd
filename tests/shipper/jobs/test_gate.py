"""The check before a delete: a verified archive holding at least what the backend has, per unit."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import orjson
import pytest
from click.testing import CliRunner

from shipper.archive.days import days_expiring_within
from shipper.archive.storage.local import LocalStore
from shipper.jobs import cli as jobs_cli
from shipper.jobs import endpoints as endpoints_mod
from shipper.jobs.archive import archive_day
from shipper.jobs.gate import may_delete

from ._support import DAY, ScriptedExporter, sample_units

NOW = datetime(2025, 1, 16, 3, tzinfo=UTC)


def test_a_verified_export_holding_every_unit_may_be_deleted(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    exporter = ScriptedExporter(sample_units())
    archive_day(exporter, store, DAY, now=NOW)
    counts = exporter.counts(DAY)
    assert may_delete(store, DAY, "loki", counts).ok
    # The backend deleted some already: the archive holds more, still fine.
    assert may_delete(store, DAY, "loki", {k: v - 1 for k, v in counts.items()}).ok
    more = may_delete(store, DAY, "loki", {**counts, "stream=0000000000000001": 51})
    assert not more.ok and more.reasons == ["the archive holds 50 events of stream=0000000000000001, the backend 51"]
    new_unit = may_delete(store, DAY, "loki", {**counts, "stream=ffff": 1})
    assert not new_unit.ok and "stream=ffff" in new_unit.reasons[0]
    assert not may_delete(store, DAY, "elasticsearch", counts).ok
    missing = may_delete(store, date(2025, 1, 14), "loki", {})
    assert not missing.ok and "manifest.json: missing" in missing.reasons[0]
    victim = store.list("date=2025-01-15/stream=")[0].key
    (tmp_path / victim).write_bytes(b"tampered")
    damaged = may_delete(store, DAY, "loki", counts)
    assert not damaged.ok and victim in damaged.reasons[0]


def test_days_expiring_within_count_from_the_day_start() -> None:
    now = datetime(2025, 3, 1, 2, 17, tzinfo=UTC)
    # 30 days after their start: 2025-01-30 at 2025-03-01 00:00 (already), 01-31 at 03-02 00:00, ...
    assert days_expiring_within(timedelta(days=30), timedelta(days=3), now) == [
        date(2025, 1, 31), date(2025, 2, 1), date(2025, 2, 2)]
    assert days_expiring_within(timedelta(days=30), timedelta(0), now) == []


def _cli(*args: str) -> Any:
    group = click.Group("ecvi-logs")
    for command in jobs_cli.COMMANDS:
        group.add_command(command)
    return CliRunner().invoke(group, list(args), catch_exceptions=False)


def test_archive_gate_exits_1_while_a_day_about_to_go_is_not_archived(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = sample_units()
    monkeypatch.setattr(endpoints_mod, "open_exporter", lambda *a, **kw: ScriptedExporter(data))
    archive = tmp_path.as_uri()
    before = _cli("archive", "gate", "--backend", "loki", "--from", archive, "--day", DAY.isoformat(), "--json")
    assert before.exit_code == 1 and not orjson.loads(before.output)["ok"]
    archive_day(ScriptedExporter(data), LocalStore(tmp_path), DAY, now=NOW)
    after = _cli("archive", "gate", "--backend", "loki", "--from", archive, "--day", DAY.isoformat())
    assert after.exit_code == 0 and "2025-01-15 may be deleted" in after.output
    data["stream=0000000000000000"].append(data["stream=0000000000000000"][-1])  # a late line
    late = _cli("archive", "gate", "--backend", "loki", "--from", archive, "--day", DAY.isoformat())
    assert late.exit_code == 1 and "2025-01-15 KEEP" in late.output and "the backend 51" in late.output
    assert _cli("archive", "gate", "--backend", "loki", "--from", archive).exit_code == 2
