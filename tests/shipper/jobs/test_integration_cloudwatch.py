"""Archive CloudWatch Logs into S3 (moto): checksums, Object Lock, lifecycle, faults, retention."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.archive.layout import manifest_key
from shipper.archive.storage.s3 import S3Store, build_s3_client
from shipper.errors import StorageError
from shipper.jobs.archive import archive_day
from shipper.jobs.exporters.cloudwatch import CloudWatchExporter, build_logs_client
from shipper.jobs.verify import verify_day
from shipper.sinks.cloudwatch.config import CloudWatchSinkConfig
from shipper.sinks.cloudwatch.sink import CloudWatchSink
from tests.services.aws import Moto

from ._integration import cli, days_ago, make_events, on_day, ship

pytestmark = pytest.mark.integration


@pytest.fixture
def shipped(aws_env: Moto, tmp_path: Path) -> dict[str, Any]:
    """Events of three days (within CloudWatch's 14) in log groups /ecvi-jobs/<run>/<service>."""
    run = uuid.uuid4().hex[:8]
    days = [days_ago(3), days_ago(2), days_ago(1)]
    events = make_events(3000, days, run, seed=3)
    config = CloudWatchSinkConfig.model_validate({
        "type": "cloudwatch", "inputs": ["app"], "region": "us-east-1", "healthcheck": False,
        "group": f"/ecvi-jobs/{run}/{{{{ service }}}}", "stream": "{{ kubernetes.pod_name }}",
        "batch": {"max_events": 1000}})
    ship(CloudWatchSink("cw", config, str(tmp_path)), config, events, tmp_path / "ship")
    bucket = f"ecvi-archive-{run}"
    aws_env.client("s3").create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    return {"run": run, "days": days, "events": events, "bucket": bucket, "prefix": f"/ecvi-jobs/{run}/"}


def test_archive_to_s3_with_object_lock_verify_tamper_restore(aws_env: Moto, shipped: dict[str, Any],
                                                               tmp_path: Path) -> None:
    day = shipped["days"][1]
    expected = on_day(shipped["events"], day)
    to = f"s3://{shipped['bucket']}/cloudwatch"
    flags = ["--cw-prefix", shipped["prefix"], "--region", "us-east-1"]
    result = cli("archive", "run", "--backend", "cloudwatch", *flags, "--day", day.isoformat(), "--to", to,
                 "--object-lock", "governance", "--lock-days", "2", "--json")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output)["events"] == len(expected)

    s3 = aws_env.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=shipped["bucket"])["Contents"]]
    parts = [k for k in keys if k.endswith(".ndjson.gz")]
    assert len(parts) == 2 and f"cloudwatch/date={day}/manifest.json" in keys  # one object per log group
    head = s3.head_object(Bucket=shipped["bucket"], Key=parts[0], ChecksumMode="ENABLED")
    body = s3.get_object(Bucket=shipped["bucket"], Key=parts[0])["Body"].read()
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert (head["ObjectLockRetainUntilDate"] - datetime.now(UTC)).days in (1, 2)

    verified = cli("archive", "verify", "--day", day.isoformat(), "--from", to, "--backend", "cloudwatch", *flags,
                   "--json")
    assert verified.exit_code == 0, verified.output
    assert sum(orjson.loads(verified.output)["backend_counts"].values()) == len(expected)

    out = tmp_path / "restored.ndjson"
    restored = cli("archive", "restore", "--day", day.isoformat(), "--from", to, "--to", "file", "--path", str(out),
                   "--data-dir", str(tmp_path / "dl"))
    assert restored.exit_code == 0, restored.output
    assert sorted(out.read_text().splitlines()) == sorted(e.raw for e in expected)

    # Object Lock keeps the old version; a new one (a forgery with a valid checksum) still fails verify.
    forged = body[:-8] + b"\x00" * 8
    s3.put_object(Bucket=shipped["bucket"], Key=parts[0], Body=forged, ChecksumAlgorithm="SHA256")
    bad = cli("archive", "verify", "--day", day.isoformat(), "--from", to)
    assert bad.exit_code == 1 and parts[0].removeprefix("cloudwatch/") in bad.output
    assert cli("archive", "verify", "--day", day.isoformat(), "--from", to, "--quick").exit_code == 1

    rule = cli("archive", "lifecycle", "--to", to, "--expire-days", "365")
    assert rule.exit_code == 0, rule.output
    (stored,) = s3.get_bucket_lifecycle_configuration(Bucket=shipped["bucket"])["Rules"]
    assert stored["Expiration"] == {"Days": 365} and stored["Filter"] == {"Prefix": "cloudwatch/"}


class _FailingS3(S3Store):
    def __init__(self, *args: Any, fail_on: int, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.fail_on, self.puts = fail_on, 0

    def put(self, key: str, data: bytes, sha256: str) -> None:
        self.puts += 1
        if self.puts == self.fail_on:
            raise StorageError(f"{self.describe(key)}: InternalError", transient=True)
        super().put(key, data, sha256)


def test_an_s3_failure_mid_run_leaves_no_manifest_and_the_next_run_resumes(
        aws_env: Moto, shipped: dict[str, Any]) -> None:
    day = shipped["days"][0]
    exporter = CloudWatchExporter(build_logs_client(region="us-east-1"), prefix=shipped["prefix"])
    now = datetime.now(UTC)
    failing = _FailingS3(shipped["bucket"], "resume", build_s3_client(region="us-east-1"), fail_on=2)
    result = archive_day(exporter, failing, day, now=now, max_object_bytes=64 * 1024)
    assert result.status == "failed" and "InternalError" in result.error
    store = S3Store(shipped["bucket"], "resume", build_s3_client(region="us-east-1"))
    assert store.stat(manifest_key(day)) is None
    resumed = archive_day(exporter, store, day, now=now, max_object_bytes=64 * 1024)
    assert resumed.status == "archived" and resumed.reused == 1
    assert resumed.events == len(on_day(shipped["events"], day))
    assert verify_day(store, day, exporter=exporter).ok


def test_retention_apply_and_check(aws_env: Moto, shipped: dict[str, Any]) -> None:
    flags = ["--backend", "cloudwatch", "--cw-prefix", shipped["prefix"], "--region", "us-east-1"]
    logs = aws_env.client("logs")
    groups = logs.describe_log_groups(logGroupNamePrefix=shipped["prefix"])["logGroups"]
    logs.put_retention_policy(logGroupName=groups[0]["logGroupName"], retentionInDays=90)
    logs.delete_retention_policy(logGroupName=groups[1]["logGroupName"])

    drift = cli("retention", "check", *flags, "--json")
    assert drift.exit_code == 1
    assert sorted(f["actual"] for f in orjson.loads(drift.output)["findings"]) == ["90", "never expire"]
    applied = cli("retention", "apply", *flags)
    assert applied.exit_code == 0, applied.output
    after = logs.describe_log_groups(logGroupNamePrefix=shipped["prefix"])["logGroups"]
    assert [g.get("retentionInDays") for g in after] == [30, 30]
    assert cli("retention", "check", *flags).exit_code == 0
