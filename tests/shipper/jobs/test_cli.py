"""The commands, run through a click group of their own (as ``ecvi-logs`` will attach them)."""

from pathlib import Path
from typing import Any

import click
import orjson
import pytest
import yaml
from click.testing import CliRunner

from shipper.archive import days as days_mod
from shipper.jobs import cli as jobs_cli
from shipper.jobs import endpoints as endpoints_mod
from shipper.jobs.cli.output import ProgressBar

from ._support import DAY, ScriptedExporter, sample_units


@pytest.fixture
def main() -> click.Group:
    group = click.Group("ecvi-logs")
    for command in jobs_cli.COMMANDS:
        group.add_command(command)
    return group


def run(main: click.Group, *args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(endpoints_mod, "open_exporter",
                        lambda backend, *a, **kw: ScriptedExporter(sample_units(), backend))


def test_help(main: click.Group) -> None:
    out = run(main, "--help").output
    assert "archive" in out and "retention" in out
    assert {"run", "seal", "verify", "restore", "lifecycle"} <= set(jobs_cli.archive.commands)
    assert {"apply", "check", "enforce"} <= set(jobs_cli.retention.commands)
    assert "--settled 26h" in run(main, "archive", "--help").output
    assert "--object-lock" in run(main, "archive", "run", "--help").output


@pytest.mark.parametrize("args", [
    ["--day", "2025-01-15", "--older-than", "29d"],
    [],
    ["--day", "2025-01-15", "--object-lock", "compliance"],
])
def test_usage_errors(main: click.Group, tmp_path: Path, args: list[str]) -> None:
    result = run(main, "archive", "run", "--backend", "loki", "--to", tmp_path.as_uri(), *args)
    assert result.exit_code == 2


def test_run_verify_tamper(main: click.Group, tmp_path: Path, scripted: None) -> None:
    archive = tmp_path.as_uri()
    result = run(main, "archive", "run", "--backend", "loki", "--day", "2025-01-15", "--to", archive, "--json",
                 "--days", "3653")
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.output)
    assert summary["ok"] and summary["events"] == 100 and summary["days"][0]["status"] == "archived"
    assert summary["events_per_second"] > 0 and summary["mib_per_second"] is not None
    again = run(main, "archive", "run", "--backend", "loki", "--day", "2025-01-15", "--to", archive)
    assert "2025-01-15 skipped: 100 events" in again.output

    ok = run(main, "archive", "verify", "--day", "2025-01-15", "--from", archive)
    assert ok.exit_code == 0 and "2025-01-15 OK" in ok.output
    victim = next(tmp_path.rglob("part-00000.ndjson.gz"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the deflate stream
    victim.write_bytes(bytes(data))
    bad = run(main, "archive", "verify", "--day", "2025-01-15", "--from", archive, "--json")
    assert bad.exit_code == 1
    report = orjson.loads(bad.output)
    assert not report["ok"] and any(victim.relative_to(tmp_path).as_posix() in p for p in report["problems"])


def test_a_failed_day_exits_1(main: click.Group, tmp_path: Path) -> None:
    result = run(main, "archive", "verify", "--day", "2025-01-15", "--from", tmp_path.as_uri())
    assert result.exit_code == 1 and "manifest.json: missing" in result.output


def test_seal_and_restore_to_a_file(main: click.Group, tmp_path: Path, scripted: None) -> None:
    archive = (tmp_path / "a").as_uri()
    run(main, "archive", "run", "--backend", "loki", "--day", "2025-01-15", "--to", archive, "--force")
    out = tmp_path / "restored.ndjson"
    result = run(main, "archive", "restore", "--day", "2025-01-15", "--from", archive, "--to", "file",
                 "--path", str(out), "--data-dir", str(tmp_path / "dl"), "--json")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output)["delivered"] == 100
    assert len(out.read_text().splitlines()) == 100
    sealed = run(main, "archive", "seal", "--day", "2025-01-15", "--to", (tmp_path / "empty").as_uri())
    assert sealed.exit_code == 0 and "sealed: 0 events" in sealed.output
    refused = run(main, "archive", "seal", "--day", "2025-01-15", "--to", archive)
    assert refused.exit_code == 1 and "not an archive written at ingest" in refused.output


def test_lifecycle_needs_s3(main: click.Group, tmp_path: Path) -> None:
    result = run(main, "archive", "lifecycle", "--to", tmp_path.as_uri(), "--expire-days", "365")
    assert result.exit_code == 2 and "needs an s3:// archive" in result.output


def test_retention_apply_writes_a_loki_config_then_check_agrees(main: click.Group, tmp_path: Path) -> None:
    config = tmp_path / "loki.yaml"
    config.write_text(yaml.safe_dump({"auth_enabled": False, "compactor": {"working_directory": "/c"},
                                      "limits_config": {"retention_period": "0s"}}))
    check = run(main, "retention", "check", "--backend", "loki", "--loki-config", str(config))
    assert check.exit_code == 1 and "DRIFT loki" in check.output
    dry = run(main, "retention", "apply", "--backend", "loki", "--loki-config", str(config), "--dry-run")
    assert dry.exit_code == 0 and "would set" in dry.output and "0s" in config.read_text()
    applied = run(main, "retention", "apply", "--backend", "loki", "--loki-config", str(config),
                  "--stream-retention", '{level="debug"}=7d')
    assert applied.exit_code == 0, applied.output
    written = yaml.safe_load(config.read_text())
    assert written["auth_enabled"] is False and written["limits_config"]["retention_period"] == "720h"
    assert written["limits_config"]["retention_stream"] == [{"selector": '{level="debug"}', "priority": 1,
                                                              "period": "168h"}]
    assert (tmp_path / "loki.yaml.bak").exists()
    ok = run(main, "retention", "check", "--backend", "loki", "--loki-config", str(config),
             "--stream-retention", '{level="debug"}=7d', "--json")
    assert ok.exit_code == 0 and orjson.loads(ok.output)["ok"]


def test_retention_apply_prints_loki_settings_without_a_file(main: click.Group) -> None:
    result = run(main, "retention", "apply", "--backend", "loki", "--days", "60")
    assert result.exit_code == 0
    assert "retention_period: 1440h" in result.output and "retention_enabled: true" in result.output


def test_no_backend_is_a_usage_error(main: click.Group) -> None:
    assert run(main, "retention", "check").exit_code == 2
    nowhere = run(main, "retention", "check", "--backend", "loki")
    assert nowhere.exit_code == 1 and "no Loki endpoint" in nowhere.output


def test_progress_bar_only_on_a_terminal() -> None:
    bar = ProgressBar()
    bar.start("loki 2025-01-15", 3)
    bar.unit_done(10)
    bar.finish()
    assert not bar.enabled  # pytest's stderr is not a terminal


def test_checking_against_a_backend_reuses_what_the_archive_recorded() -> None:
    loki = endpoints_mod.open_exporter("loki", None, recorded={
        "backend": "loki", "endpoint": "http://loki:3100", "tenant": "t1", "selectors": ['{run="x"}']})
    assert (loki.selectors, loki.tenant, loki.http.base_url) == (['{run="x"}'], "t1", "http://loki:3100")  # type: ignore[attr-defined]
    es = endpoints_mod.open_exporter("elasticsearch", None, recorded={
        "backend": "elasticsearch", "endpoint": "http://es:9200", "pattern": "logs-*"})
    assert es.pattern == "logs-*"  # type: ignore[attr-defined]
    other = endpoints_mod.open_exporter("loki", None, loki_url="http://other:3100", selectors=('{a="b"}',),
                                  recorded={"backend": "loki"})
    assert (other.selectors, other.http.base_url) == (['{a="b"}'], "http://other:3100")  # type: ignore[attr-defined]


def test_without_backend_each_backend_of_the_config_goes_to_its_own_directory(
        main: click.Group, tmp_path: Path, scripted: None) -> None:
    contract = Path(__file__).parents[1] / "fixtures" / "contract.yaml"
    root = tmp_path / "archive"
    result = run(main, "archive", "run", "--config", str(contract), "--day", "2025-01-15", "--force",
                 "--to", root.as_uri() + "/", "--json")
    assert result.exit_code == 0, result.output
    days = orjson.loads(result.output)["days"]
    assert [(d["backend"], d["archive"]) for d in days] == [
        (b, (root / b).as_uri()) for b in ("loki", "elasticsearch", "cloudwatch")]
    for backend in ("loki", "elasticsearch", "cloudwatch"):
        assert run(main, "archive", "verify", "--day", "2025-01-15", "--from", (root / backend).as_uri()).exit_code == 0


class _Nightly(ScriptedExporter):
    """Lines on DAY only (other days are empty); ``down`` makes every call fail, like an unreachable backend."""

    down = False

    def units(self, day):  # type: ignore[no-untyped-def]
        if self.down:
            from shipper.errors import BackendError
            raise BackendError("loki.test: connection refused")
        return super().units(day) if day == DAY else []

    def counts(self, day):  # type: ignore[no-untyped-def]
        self.units(day)  # raises while down
        return super().counts(day) if day == DAY else {}


def _gauges(prom: Path) -> dict[str, float]:
    return {line.split("{")[0]: float(line.rsplit(" ", 1)[1])
            for line in prom.read_text().splitlines() if not line.startswith("#")}


def test_settled_runs_catch_up_after_a_failed_night_and_re_archive_late_lines(
        main: click.Group, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime, timedelta

    data = sample_units()
    exporter = _Nightly(data)
    monkeypatch.setattr(endpoints_mod, "open_exporter", lambda *a, **kw: exporter)
    archive, prom = tmp_path / "archive", tmp_path / "ecvi_archive.prom"
    args = ["archive", "run", "--backend", "loki", "--settled", "26h", "--to", archive.as_uri(),
            "--textfile", str(prom), "--json"]

    def night(day_after: int) -> dict[str, Any]:
        now = datetime(2025, 1, 15, 3, 0, tzinfo=UTC) + timedelta(days=day_after)
        monkeypatch.setattr(days_mod, "utcnow", lambda: now)
        result = run(main, *args)
        return {"exit": result.exit_code, **orjson.loads(result.output)}

    exporter.down = True
    failed = night(2)  # D+2 03:00: D is settled (ended 27h ago) but the backend is down
    assert failed["exit"] == 1 and not failed["ok"]
    assert [d["day"] for d in failed["days"]][-1] == "2025-01-15" and len(failed["days"]) == 28
    assert 'ecvi_archive_unverified_days{backend="loki",archive="' + archive.as_uri() + '"} 28' in prom.read_text()
    gauges = _gauges(prom)
    assert gauges["ecvi_archive_run_success"] == 0
    # The oldest day of the window (2025-01-18 minus 30 days, 03:00 cut) is the oldest without an archive.
    assert gauges["ecvi_archive_verified_until_timestamp_seconds"] == datetime(2024, 12, 19, tzinfo=UTC).timestamp()

    exporter.down = False
    good = night(3)
    assert good["exit"] == 0 and good["ok"], good
    assert {d["day"]: d["status"] for d in good["days"]}["2025-01-15"] == "archived"
    assert all(d["verified"] for d in good["days"]) and len(good["days"]) == 28
    gauges = _gauges(prom)
    assert gauges["ecvi_archive_unverified_days"] == 0 and gauges["ecvi_archive_run_success"] == 1
    # Every day up to and including 2025-01-16 (settled at D+3 03:00) has a verified archive.
    assert gauges["ecvi_archive_verified_until_timestamp_seconds"] == datetime(2025, 1, 17, tzinfo=UTC).timestamp()
    assert gauges["ecvi_archive_settle_seconds"] == 26 * 3600

    ts = data["stream=0000000000000000"][-1][0] + 1
    data["stream=0000000000000000"].append((ts, data["stream=0000000000000000"][-1][1]))
    late = night(4)
    assert late["exit"] == 0 and late["rearchived"] == ["loki 2025-01-15"], late
    day = next(d for d in late["days"] if d["day"] == "2025-01-15")
    assert (day["status"], day["version"], day["late_events"]) == ("rearchived", 2, 1)
    gauges = _gauges(prom)
    assert gauges["ecvi_archive_rearchived_days"] == 1 and gauges["ecvi_archive_rearchive_pending_days"] == 0
    for version in ("1", "2"):
        assert (archive / "date=2025-01-15" / f"manifest.v{version}.json").exists()
