"""The archive job's results for Prometheus: a node-exporter textfile, rewritten after every run.

Why a textfile: the CronJob's pod lives minutes a night, so nothing can scrape it; node-exporter's
textfile collector (already on every node) serves the file between runs, with no Pushgateway and
no port to open. The file states what the alerts need and stays true while the job is not running:
``ecvi_archive_verified_until_timestamp_seconds`` is the start of the oldest day of the retention
window without a verified archive, so ``time()`` minus it keeps growing when runs fail *or stop*.
A pod may run on another node the next night: the alerts take the newest value over instances.

Gauges (labels ``backend`` and ``archive``)::

    ecvi_archive_last_run_timestamp_seconds          when this run finished
    ecvi_archive_run_success                         1 when no day failed
    ecvi_archive_verified_until_timestamp_seconds    every day before this has a verified archive
    ecvi_archive_settle_seconds                      how long after its end a day is archived
    ecvi_archive_retention_seconds                   when the backend starts deleting a day (after its start)
    ecvi_archive_unverified_days                     days of the window without a verified archive
    ecvi_archive_rearchive_pending_days              days that changed in the backend, not archived again
    ecvi_archive_rearchived_days                     days archived again in this run (late lines)
    ecvi_archive_late_events                         late events found in this run
    ecvi_archive_late_check_seconds                  time spent comparing counts with the backend
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from shipper.archive.days import NS_PER_SEC, day_start_ns
from shipper.jobs.archive import DayResult


@dataclass(frozen=True, slots=True)
class RunStatus:
    """One backend's results of one run over the settled days of its retention window."""

    backend: str
    archive: str
    results: Sequence[DayResult]
    finished: datetime
    settle: timedelta
    retention: timedelta

    def verified_until(self) -> float | None:
        """Start (epoch seconds) of the oldest day without a verified archive; the end of the newest
        day when every day is verified; None when the run covered no day."""
        days = sorted(self.results, key=lambda r: r.day)
        for r in days:
            if not r.verified:
                return day_start_ns(r.day) / NS_PER_SEC
        return day_start_ns(days[-1].day) / NS_PER_SEC + 86_400 if days else None

    def gauges(self) -> dict[str, float]:
        out = {
            "last_run_timestamp_seconds": self.finished.timestamp(),
            "run_success": float(all(r.status != "failed" for r in self.results)),
            "settle_seconds": self.settle.total_seconds(),
            "retention_seconds": self.retention.total_seconds(),
            "unverified_days": sum(1 for r in self.results if not r.verified),
            "rearchive_pending_days": sum(1 for r in self.results if r.rearchive_pending),
            "rearchived_days": sum(1 for r in self.results if r.status == "rearchived"),
            "late_events": sum(r.late_events for r in self.results),
            "late_check_seconds": sum(r.late_check_seconds or 0.0 for r in self.results),
        }
        until = self.verified_until()
        if until is not None:
            out["verified_until_timestamp_seconds"] = until
        return out


_HELP = {
    "last_run_timestamp_seconds": "When the archive run finished.",
    "run_success": "1 when no day failed in the last run.",
    "verified_until_timestamp_seconds": "Every day before this moment has a verified archive (window start on).",
    "settle_seconds": "Time after a day's end before it is archived.",
    "retention_seconds": "Time after a day's start when the backend starts deleting it.",
    "unverified_days": "Settled days of the retention window without a verified archive.",
    "rearchive_pending_days": "Days that gained lines in the backend and are not archived again yet.",
    "rearchived_days": "Days archived again in the last run because of late lines.",
    "late_events": "Events found in the backend beyond the archive in the last run.",
    "late_check_seconds": "Seconds spent comparing backend counts with manifests in the last run.",
}


#: Every metric name the textfile can hold (what alert rules may use).
METRIC_NAMES = tuple(f"ecvi_archive_{name}" for name in _HELP)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(statuses: Sequence[RunStatus]) -> str:
    """The Prometheus text exposition of ``statuses`` (one series per backend and gauge)."""
    lines: list[str] = []
    for name, help_text in _HELP.items():
        rows = [(s, s.gauges().get(name)) for s in statuses]
        rows = [(s, v) for s, v in rows if v is not None]
        if not rows:
            continue
        metric = f"ecvi_archive_{name}"
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        lines += [f'{metric}{{backend="{_label(s.backend)}",archive="{_label(s.archive)}"}} {v:.17g}'
                  for s, v in rows]
    return "\n".join(lines) + "\n"


def write_textfile(path: str | Path, text: str) -> None:
    """Replace ``path`` atomically (node-exporter must never read half a file)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".ecvi-archive-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
