"""CloudWatch Logs retention: ``PutRetentionPolicy`` on every log group under a prefix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from shipper.errors import BackendError
from shipper.jobs.exporters.cloudwatch import log_groups
from shipper.jobs.retention.report import Finding
from shipper.sinks.cloudwatch.limits import RETENTION_DAYS

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient


def check_days(days: int) -> None:
    if days not in RETENTION_DAYS:
        allowed = ", ".join(str(d) for d in sorted(RETENTION_DAYS))
        raise ValueError(f"CloudWatch Logs does not accept a retention of {days} days; use one of {allowed}")


def _groups(client: CloudWatchLogsClient, prefix: str) -> list[tuple[str, int | None]]:
    try:
        return [(g["logGroupName"], g.get("retentionInDays")) for g in log_groups(client, prefix)]
    except (ClientError, BotoCoreError) as exc:
        raise BackendError(f"CloudWatch Logs: DescribeLogGroups {prefix!r}: {exc}") from exc


def check(client: CloudWatchLogsClient, prefix: str, days: int) -> list[Finding]:
    """One finding per log group under ``prefix``: its ``retentionInDays`` (unset: never expires)."""
    check_days(days)
    return [Finding("cloudwatch", name, "retentionInDays", str(days), "never expire" if actual is None else str(actual),
                    actual == days) for name, actual in _groups(client, prefix)]


def apply(client: CloudWatchLogsClient, prefix: str, days: int, *, dry_run: bool = False) -> list[Finding]:
    """Set ``days`` on every group under ``prefix`` that has another value (or none)."""
    check_days(days)
    out = []
    for name, actual in _groups(client, prefix):
        shown = "never expire" if actual is None else str(actual)
        if actual == days:
            out.append(Finding("cloudwatch", name, "retentionInDays", str(days), shown, True, action="unchanged"))
            continue
        if not dry_run:
            try:
                client.put_retention_policy(logGroupName=name, retentionInDays=days)
            except (ClientError, BotoCoreError) as exc:
                out.append(Finding("cloudwatch", name, "retentionInDays", str(days), shown, False,
                                   action="failed", note=str(exc)))
                continue
        out.append(Finding("cloudwatch", name, "retentionInDays", str(days), shown, True,
                           action="would set" if dry_run else "set"))
    return out
