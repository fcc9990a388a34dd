"""The early archive against real Loki, Elasticsearch and S3 (moto): a failed night, a good one, late lines.

A day is archived as soon as it settled (``--settled 1h``: the fixture Loki refuses lines older
than a week, so the day is two days old, not 26 hours). Then a node's shipper drains a backlog
into that day: the next run sees more events in the backend than in the manifest and archives the
day again as version 2, keeping version 1; both verify deeply.
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.archive.days import day_bounds_ns
from shipper.event import Event
from shipper.sinks.elasticsearch.config import ElasticsearchSinkConfig
from shipper.sinks.elasticsearch.sink import ElasticsearchSink
from shipper.sinks.loki.config import LokiSinkConfig
from shipper.sinks.loki.sink import LokiSink
from tests.factories import event, iso_ms
from tests.services.es import Elasticsearch
from tests.services.loki import Loki

from ._integration import cli, days_ago, loki_flush, make_events, on_day, ship

pytestmark = pytest.mark.integration


def _late_events(day: date, run: str, n: int) -> list[Event]:
    """A backlog drained after the day was archived: a stream of its own (Loki refuses lines far
    behind an existing stream's newest one), ids the live shipper never used."""
    start = day_bounds_ns(day)[0] + 20 * 3600 * 10**9
    out = []
    for i in range(n):
        ts = start + i * 10**9
        record = {"timestamp": "", "level": "late", "logger": "app.backlog", "message": f"late {i} {run}",
                  "service": "api", "environment": "test", "run": run}
        record["timestamp"] = iso_ms(ts)
        meta = {"id": f"beef:{i * 512}", "source": "app",
                "kubernetes": {"namespace": "prod", "pod_name": "api-late", "container_name": "app"}}
        out.append(event(raw=orjson.dumps(record).decode(), ts_ns=ts, meta=meta))
    return out


def _night(backend: str, root: str, *args: str) -> dict[str, Any]:
    result = cli("archive", "run", "--backend", backend, *args, "--settled", "1h", "--days", "3",
                 "--to", f"{root}/{backend}", "--json")
    doc = orjson.loads(result.output) if result.output.startswith("{") else {"output": result.output}
    return {"exit": result.exit_code, **doc}


def _day(doc: dict[str, Any], day: date) -> dict[str, Any]:
    return next(d for d in doc["days"] if d["day"] == day.isoformat())


def test_archive_early_then_late_lines_make_a_second_version(loki: Loki, es: Elasticsearch, aws_env: Any,
                                                              tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:12]
    day = days_ago(2)
    events = make_events(2000, [day], run)
    loki_cfg = LokiSinkConfig.model_validate({
        "type": "loki", "inputs": ["app"], "endpoint": loki.url, "healthcheck": False,
        "labels": {"service": "{{ service }}", "level": "{{ level }}", "run": run}, "batch": {"max_events": 500}})
    index = f"ecvi-late-{run}-%Y.%m.%d"
    es_cfg = ElasticsearchSinkConfig.model_validate({
        "type": "elasticsearch", "inputs": ["app"], "endpoint": es.url, "index": index, "healthcheck": False,
        "batch": {"max_events": 500}})
    ship(LokiSink("loki", loki_cfg, str(tmp_path)), loki_cfg, events, tmp_path / "ship-loki")
    ship(ElasticsearchSink("es", es_cfg, str(tmp_path)), es_cfg, events, tmp_path / "ship-es")
    loki_flush(loki.url)
    with es.client() as client:
        client.indices.refresh(index=day.strftime(index))
    expected = len(on_day(events, day))
    bucket = f"ecvi-late-{run}"
    root = f"s3://{bucket}"
    flags = {"loki": ["--loki-url", loki.url, "--selector", f'{{run="{run}"}}'],
             "elasticsearch": ["--es-url", es.url, "--index", index]}

    try:
        # A failed night: the bucket is not there (S3 refusing every request). No day counts as archived.
        for backend, args in flags.items():
            failed = _night(backend, root, *args)
            assert failed["exit"] == 1, failed
            assert _day(failed, day)["status"] == "failed" and not _day(failed, day)["verified"]

        # The next night is good: every settled day of the window is archived and verified.
        aws_env.client("s3").create_bucket(Bucket=bucket)
        for backend, args in flags.items():
            good = _night(backend, root, *args)
            assert good["exit"] == 0 and good["ok"], good
            assert all(d["verified"] for d in good["days"]), good
            first = _day(good, day)
            assert (first["status"], first["version"], first["events"]) == ("archived", 1, expected)

        # A node drains its backlog into the archived day.
        late = _late_events(day, run, 40)
        ship(LokiSink("loki", loki_cfg, str(tmp_path)), loki_cfg, late, tmp_path / "late-loki")
        ship(ElasticsearchSink("es", es_cfg, str(tmp_path)), es_cfg, late, tmp_path / "late-es")
        loki_flush(loki.url)
        with es.client() as client:
            client.indices.refresh(index=day.strftime(index))

        for backend, args in flags.items():
            again = _night(backend, root, *args)
            assert again["exit"] == 0, again
            result = _day(again, day)
            assert (result["status"], result["version"], result["late_events"]) == ("rearchived", 2, 40), result
            assert result["events"] == expected + 40 and again["rearchived"] == [f"{backend} {day}"]
            print(f"late-line check {backend}: {result['late_check_seconds']}s for the day, "
                  f"{again['late_check_seconds']}s for {len(again['days'])} day(s)")
            for version in ([], ["--version", "1"], ["--version", "2"]):
                verified = cli("archive", "verify", "--day", day.isoformat(), "--from", f"{root}/{backend}",
                               *version, "--json")
                assert verified.exit_code == 0, verified.output
                report = orjson.loads(verified.output)
                assert report["events"] == (expected if version == ["--version", "1"] else expected + 40)
                assert not report["warnings"], report
            against = cli("archive", "verify", "--day", day.isoformat(), "--from", f"{root}/{backend}",
                          "--backend", backend, *args, "--json")
            assert against.exit_code == 0, against.output

            quiet = _night(backend, root, *args)  # nothing new: the day is checked and left alone
            assert (_day(quiet, day)["status"], _day(quiet, day)["version"]) == ("skipped", 2), quiet
    finally:
        with es.client() as client:
            client.options(ignore_status=(400, 404)).indices.delete(index=f"ecvi-late-{run}-*")
            client.options(ignore_status=(400, 404)).indices.delete_index_template(name=f"ecvi-late-{run}")
