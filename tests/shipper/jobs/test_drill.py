"""archive drill: verify, restore into a scratch target, read back, compare; one line and an exit code."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
import pytest
from click.testing import CliRunner

from shipper.archive.storage.local import LocalStore
from shipper.jobs import cli as jobs_cli
from shipper.jobs import endpoints as endpoints_mod
from shipper.jobs.archive import archive_day
from shipper.jobs.drill import multiset_digest

from ._support import DAY, ScriptedExporter, sample_units

NOW = datetime(2025, 1, 16, 3, tzinfo=UTC)


def _cli(*args: str) -> Any:
    group = click.Group("ecvi-logs")
    for command in jobs_cli.COMMANDS:
        group.add_command(command)
    return CliRunner().invoke(group, list(args), catch_exceptions=False)


def test_multiset_digest_ignores_order_but_not_duplicates_or_content() -> None:
    assert multiset_digest(["a", "b"]) == multiset_digest(["b", "a"])
    assert multiset_digest(["a", "a"]) != multiset_digest(["a"])
    assert multiset_digest(["a", "b"])[1] != multiset_digest(["a", "c"])[1]


def test_a_drill_into_files_passes_then_fails_on_damage_and_on_backend_drift(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = sample_units(3, 40)
    archive_day(ScriptedExporter(data), LocalStore(tmp_path), DAY, now=NOW)
    monkeypatch.setattr(endpoints_mod, "open_exporter", lambda *a, **kw: ScriptedExporter(data))
    args = ["archive", "drill", "--day", DAY.isoformat(), "--from", tmp_path.as_uri()]

    ok = _cli(*args, "--backend", "loki")
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("2025-01-15 drill OK: 120 archived, 120 restored into file, 120 read back, "
                                "backend 120") and ok.output.count("\n") == 1

    data["stream=0000000000000002"].append(data["stream=0000000000000002"][-1])  # the backend gained a line
    drift = _cli(*args, "--backend", "loki", "--json")
    assert drift.exit_code == 1
    doc = orjson.loads(drift.output)
    assert not doc["ok"] and doc["backend"] == 121 and "the backend has 41 events, the archive 40" in doc["problems"][0]

    victim = next(tmp_path.rglob("part-00000.ndjson.gz"))
    victim.write_bytes(victim.read_bytes()[:-8])
    damaged = _cli(*args)
    assert damaged.exit_code == 1 and "drill FAILED" in damaged.output and victim.name in damaged.output
