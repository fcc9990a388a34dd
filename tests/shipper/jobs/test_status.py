"""The textfile the alerts read: the oldest day without a verified archive, whatever came after it."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from shipper.jobs.archive import DayResult
from shipper.jobs.status import RunStatus, render, write_textfile


def _status(*verified: bool) -> RunStatus:
    days = [DayResult(date(2025, 1, 10) + timedelta(days=i), "skipped" if ok else "failed", verified=ok)
            for i, ok in enumerate(verified)]
    return RunStatus("loki", 's3://b/"x"', days, datetime(2025, 1, 15, 3, tzinfo=UTC), timedelta(hours=26),
                     timedelta(days=30))


def test_a_gap_holds_the_watermark_even_when_later_days_are_archived() -> None:
    assert _status(True, False, True).verified_until() == datetime(2025, 1, 11, tzinfo=UTC).timestamp()
    assert _status(True, True).verified_until() == datetime(2025, 1, 12, tzinfo=UTC).timestamp()
    assert _status().verified_until() is None
    gauges = _status(True, False, True).gauges()
    assert (gauges["unverified_days"], gauges["run_success"]) == (1, 0.0)


def test_render_escapes_labels_and_writes_atomically(tmp_path: Path) -> None:
    text = render([_status(True)])
    assert 'ecvi_archive_unverified_days{backend="loki",archive="s3://b/\\"x\\""} 0\n' in text
    assert "# TYPE ecvi_archive_verified_until_timestamp_seconds gauge" in text
    assert "ecvi_archive_verified_until_timestamp_seconds" not in render([_status()])
    path = tmp_path / "ecvi_archive.prom"
    write_textfile(path, text)
    assert path.read_text() == text and [p.name for p in tmp_path.iterdir()] == ["ecvi_archive.prom"]


def test_the_alert_rules_use_only_metrics_the_textfile_has() -> None:
    import re

    import yaml

    from shipper.jobs.status import METRIC_NAMES

    rules = yaml.safe_load((Path(__file__).parents[3] / "deploy" / "prometheus" / "alerts.yaml").read_text())
    used = {name for g in rules["groups"] for r in g["rules"]
            for name in re.findall(r"\becvi_archive_[a-z_]+", r["expr"])}
    assert {"ecvi_archive_verified_until_timestamp_seconds", "ecvi_archive_rearchive_pending_days"} <= used
    assert used <= set(METRIC_NAMES)
    text = render([_status(True, False)])
    assert {line.split("{")[0] for line in text.splitlines() if not line.startswith("#")} == set(METRIC_NAMES)
