"""Archive, verify, restore and retention against a real Loki.

The fixture Loki rejects entries older than 168h (``reject_old_samples_max_age``), so the events
span the days 4 to 2 days ago. Restoring goes into the same single-tenant Loki under a fresh
``restored`` label: the original streams already hold newer lines, and Loki refuses entries more
than an hour behind a stream's newest one.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import orjson
import pytest
import yaml

from shipper.event import Event
from shipper.sinks.loki.config import LokiSinkConfig
from shipper.sinks.loki.sink import LokiSink
from tests.services._process import free_port
from tests.services.loki import Loki, find_binary, render_config

from ._integration import cli, days_ago, loki_flush, make_events, on_day, read_archive, ship

pytestmark = pytest.mark.integration


def _key(rec: dict) -> tuple:
    labels = {k: v for k, v in rec["labels"].items() if k != "restored"}
    return rec["ts_ns"], rec["line"], tuple(sorted(labels.items())), tuple(sorted(rec["metadata"].items()))


def test_archive_verify_tamper_restore(loki: Loki, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:12]
    days = [days_ago(4), days_ago(3), days_ago(2)]
    events = make_events(3000, days, run, ties=150)
    config = LokiSinkConfig.model_validate({
        "type": "loki", "inputs": ["app"], "endpoint": loki.url, "healthcheck": False,
        "labels": {"service": "{{ service }}", "level": "{{ level }}", "run": run},
        "structured_metadata": ["trace_id", "request_id", "kubernetes.pod_name"],
        "batch": {"max_events": 500},
    })
    ship(LokiSink("loki", config, str(tmp_path)), config, events, tmp_path / "ship")
    loki_flush(loki.url)
    day = days[1]
    expected = on_day(events, day)
    # Backdated lines become queryable as the ingester's flush reaches them (slower under load).
    _wait_queryable(loki, f'{{run="{run}"}}', expected)
    archive = tmp_path / "archive"
    selector = ["--loki-url", loki.url, "--selector", f'{{run="{run}"}}']

    # Pages of 100 entries: the 150 entries sharing one timestamp cross at least one page boundary.
    result = cli("archive", "run", "--backend", "loki", *selector, "--day", day.isoformat(),
                 "--to", archive.as_uri(), "--page-size", "100", "--json")
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.output)
    assert summary["days"][0]["status"] == "archived"
    assert summary["events"] == len(expected)
    lines = read_archive(archive)
    assert sorted((r["ts_ns"], r["line"]) for r in lines) == sorted((e.ts_ns, e.raw) for e in expected)
    ties = [r for r in lines if r["labels"]["level"] == "tie"]
    assert len(ties) == 150 and len({r["line"] for r in ties}) == 150
    sample = next(r for r in lines if r["labels"]["level"] != "tie")
    assert sample["labels"]["run"] == run and "service_name" in sample["labels"]
    assert {"trace_id", "request_id", "kubernetes_pod_name"} <= set(sample["metadata"])
    manifest = orjson.loads((archive / f"date={day}" / "manifest.json").read_bytes())
    assert manifest["source"]["backend"] == "loki"
    assert all(o["query"]["query"].startswith(f'{{run="{run}"') and o["query"]["direction"] == "forward"
               for o in manifest["objects"])

    ok = cli("archive", "verify", "--day", day.isoformat(), "--from", archive.as_uri(), "--backend", "loki",
             *selector, "--json")
    assert ok.exit_code == 0, ok.output
    assert sum(orjson.loads(ok.output)["backend_counts"].values()) == len(expected)

    victim = next(archive.rglob("part-00000.ndjson.gz"))
    original = victim.read_bytes()
    victim.write_bytes(original.replace(b"\x00", b"\x01", 1))
    bad = cli("archive", "verify", "--day", day.isoformat(), "--from", archive.as_uri())
    assert bad.exit_code == 1
    assert victim.relative_to(archive).as_posix() in bad.output
    victim.write_bytes(original)

    restored = cli("archive", "restore", "--day", day.isoformat(), "--from", archive.as_uri(), "--to", "loki",
                   "--endpoint", loki.url, "--label", f"restored={run}", "--data-dir", str(tmp_path / "dl"), "--json")
    assert restored.exit_code == 0, restored.output
    assert orjson.loads(restored.output)["delivered"] == len(expected)
    loki_flush(loki.url)
    _wait_queryable(loki, f'{{restored="{run}"}}', expected)
    again = tmp_path / "again"
    result = cli("archive", "run", "--backend", "loki", "--loki-url", loki.url, "--selector", f'{{restored="{run}"}}',
                 "--day", day.isoformat(), "--to", again.as_uri())
    assert result.exit_code == 0, result.output
    assert sorted(map(_key, read_archive(again))) == sorted(map(_key, lines))


def test_a_day_without_data_gets_an_empty_manifest(loki: Loki, tmp_path: Path) -> None:
    result = cli("archive", "run", "--backend", "loki", "--loki-url", loki.url,
                 "--selector", f'{{run="{uuid.uuid4().hex}"}}', "--day", days_ago(1).isoformat(),
                 "--to", tmp_path.as_uri(), "--json")
    assert result.exit_code == 0, result.output
    (summary,) = orjson.loads(result.output)["days"]
    assert (summary["status"], summary["events"], summary["objects"]) == ("archived", 0, 0)
    assert cli("archive", "verify", "--day", days_ago(1).isoformat(), "--from", tmp_path.as_uri()).exit_code == 0


def test_retention_of_the_running_loki(loki: Loki, tmp_path: Path) -> None:
    ok = cli("retention", "check", "--backend", "loki", "--loki-url", loki.url, "--json")
    assert ok.exit_code == 0, ok.output
    settings = {f["setting"]: f["actual"] for f in orjson.loads(ok.output)["findings"]}
    assert settings["compactor.retention_enabled"] == "true"
    assert settings["limits_config.retention_period"] == "30d"  # how Loki prints 720h
    drift = cli("retention", "check", "--backend", "loki", "--loki-url", loki.url, "--days", "14")
    assert drift.exit_code == 1 and "limits_config.retention_period: 30d (expected 336h)" in drift.output
    # apply without a config file prints the settings and reports the running Loki's drift.
    applied = cli("retention", "apply", "--backend", "loki", "--loki-url", loki.url, "--days", "14")
    assert applied.exit_code == 1 and "retention_period: 336h" in applied.output
    assert "limits_config.retention_period: 30d (expected 336h)" in applied.output
    assert cli("retention", "apply", "--backend", "loki", "--loki-url", loki.url).exit_code == 0

    # apply writes the settings into a config file, and Loki accepts the result.
    config = tmp_path / "loki.yaml"
    text = render_config(data_dir=tmp_path / "data", http_port=free_port(), grpc_port=free_port())
    config.write_text(text.replace("retention_enabled: true", "retention_enabled: false")
                      .replace("retention_period: 720h", "retention_period: 0s"))
    assert cli("retention", "check", "--backend", "loki", "--loki-config", str(config)).exit_code == 1
    applied = cli("retention", "apply", "--backend", "loki", "--loki-config", str(config), "--days", "30")
    assert applied.exit_code == 0, applied.output
    written = yaml.safe_load(config.read_text())
    assert written["compactor"]["retention_enabled"] is True
    assert written["limits_config"]["retention_period"] == "720h"
    assert written["server"] == yaml.safe_load(text)["server"]
    assert cli("retention", "check", "--backend", "loki", "--loki-config", str(config)).exit_code == 0
    check = subprocess.run([str(find_binary()), "-verify-config", f"-config.file={config}"],
                           capture_output=True, text=True, timeout=120, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def _wait_queryable(loki: Loki, query: str, expected: list[Event]) -> None:
    start = min(e.ts_ns for e in expected)
    found = loki.wait_for_entries(query, len(expected), start, max(e.ts_ns for e in expected) + 1, timeout=60)
    assert len(found) == len(expected), f"{len(found)} of {len(expected)} lines queryable after 60 s"
