"""Export a day from CloudWatch Logs: per log group, its streams in name order, ``GetLogEvents`` forward.

``GetLogEvents`` pages end when the forward token comes back unchanged (an empty page alone does
not mean the end). AWS documents ``endTime`` as exclusive and some implementations treat it as
inclusive, so events are also cut to the day here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from shipper.archive.days import day_bounds_ns
from shipper.archive.objects import encode_line
from shipper.errors import BackendError
from shipper.jobs.exporters.base import Exporter, Unit, unit_name

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

_MS = 1_000_000
#: An event is at most 2 hours ahead of its ingestion: a stream last written before that is done.
_AHEAD_MS = 2 * 3600 * 1000


def build_logs_client(*, region: str | None, endpoint: str | None = None,
                      profile: str | None = None) -> CloudWatchLogsClient:
    """A CloudWatch Logs client with botocore's standard retries (jobs may wait out throttling)."""
    import boto3  # here: boto3 takes a fifth of a second to import, and `ship` never needs it
    from botocore.config import Config

    session = boto3.session.Session(profile_name=profile, region_name=region)
    return session.client("logs", endpoint_url=endpoint, config=Config(
        retries={"mode": "standard", "max_attempts": 8}, user_agent_extra="ecvi-logs"))


def log_groups(client: CloudWatchLogsClient, prefix: str) -> list[dict[str, Any]]:
    """Every log group whose name starts with ``prefix``."""
    params: dict[str, Any] = {"logGroupNamePrefix": prefix} if prefix else {}
    groups: list[dict[str, Any]] = []
    for page in client.get_paginator("describe_log_groups").paginate(**params):
        groups.extend(page.get("logGroups", []))  # type: ignore[arg-type]
    return groups


def stream_events(client: CloudWatchLogsClient, group: str, stream: str, start_ms: int, end_ms: int,
                  limit: int = 10_000) -> Iterator[dict[str, Any]]:
    """Events of one stream in ``[start_ms, end_ms)``, oldest first."""
    token: str | None = None
    while True:
        params: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startTime": start_ms,
                                  "endTime": end_ms, "startFromHead": True, "limit": limit}
        if token:
            params["nextToken"] = token
        page = client.get_log_events(**params)
        for e in page.get("events", []):
            if start_ms <= e["timestamp"] < end_ms:
                yield dict(e)
        nxt = page.get("nextForwardToken")
        if not nxt or nxt == token:
            return
        token = nxt


class CloudWatchExporter(Exporter):
    """Reads days from the log groups under ``prefix``."""

    backend = "cloudwatch"

    def __init__(self, client: CloudWatchLogsClient, *, prefix: str, region: str | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.region = region

    def source(self) -> dict[str, Any]:
        return {"backend": "cloudwatch", "endpoint": self.client.meta.endpoint_url, "region": self.region,
                "group_prefix": self.prefix}

    def units(self, day: date) -> list[Unit]:
        start, end = (t // _MS for t in day_bounds_ns(day))
        try:
            groups = log_groups(self.client, self.prefix)
        except (ClientError, BotoCoreError) as exc:
            raise BackendError(f"CloudWatch Logs: DescribeLogGroups {self.prefix!r}: {exc}") from exc
        units = [Unit(unit_name("group", g["logGroupName"]), {
            "api": "GetLogEvents", "group": g["logGroupName"], "startTime": start, "endTime": end,
            "startFromHead": True}) for g in groups]
        return sorted(units, key=lambda u: u.name)

    def _streams(self, group: str, start_ms: int, end_ms: int) -> list[str]:
        names: list[str] = []
        for page in self.client.get_paginator("describe_log_streams").paginate(logGroupName=group):
            for s in page.get("logStreams", []):
                first = s.get("firstEventTimestamp")
                last_ingest = s.get("lastIngestionTime")
                if first is not None and first >= end_ms:
                    continue
                if last_ingest is not None and last_ingest < start_ms - _AHEAD_MS:
                    continue
                names.append(s["logStreamName"])
        return sorted(names)

    def lines(self, unit: Unit, day: date) -> Iterator[tuple[int, bytes]]:
        group = unit.query["group"]
        start, end = unit.query["startTime"], unit.query["endTime"]
        try:
            for stream in self._streams(group, start, end):
                for e in stream_events(self.client, group, stream, start, end):
                    ts = int(e["timestamp"]) * _MS
                    yield ts, encode_line({"ts_ns": ts, "line": e["message"], "group": group, "stream": stream,
                                           "ingestion_ms": e.get("ingestionTime")})
        except (ClientError, BotoCoreError) as exc:
            raise BackendError(f"CloudWatch Logs: reading {group}: {exc}") from exc

    def counts(self, day: date) -> dict[str, int]:
        """CloudWatch Logs has no count API: the day is read again and counted."""
        return {unit.name: sum(1 for _ in self.lines(unit, day)) for unit in self.units(day)}

    def close(self) -> None:
        self.client.close()
