"""Builders shared by the CloudWatch sink tests."""

from __future__ import annotations

from typing import Any

import boto3

from shipper.event import Event
from shipper.sinks.cloudwatch.config import CloudWatchSinkConfig
from tests.factories import numbered_event

NOW = 1_700_000_000.0  # the clock the unit tests run at (seconds)
NOW_MS = int(NOW * 1000)


def make_config(**overrides: Any) -> CloudWatchSinkConfig:
    base: dict[str, Any] = {
        "type": "cloudwatch",
        "inputs": ["app"],
        "region": "us-east-1",
        "group": "/ecvi/test",
        "stream": "{{ kubernetes.pod_name }}",
        "healthcheck": False,
    }
    base.update(overrides)
    return CloudWatchSinkConfig.model_validate(base)


def make_event(n: int, pod: str | None = "pod-a", ts_ms: int | None = None, raw: str | None = None) -> Event:
    """Event number ``n`` from ``pod`` (no kubernetes metadata if None), a minute before :data:`NOW` plus ``n`` ms."""
    meta: dict[str, Any] = {"kubernetes": {"pod_name": pod}} if pod else {}
    ts = NOW_MS - 60_000 + n if ts_ms is None else ts_ms
    return numbered_event(n, raw=raw, ts_ns=ts * 1_000_000 + 123, meta=meta, message=f"line {n}")


def offline_client(endpoint: str = "http://127.0.0.1:9") -> Any:
    """A real boto3 logs client with dummy credentials, for botocore's Stubber (or a dead endpoint)."""
    return boto3.client(
        "logs", region_name="us-east-1", endpoint_url=endpoint,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


def put_params(group: str, stream: str, events: list[Event]) -> dict[str, Any]:
    """The PutLogEvents parameters expected for ``events`` (already in the order to be sent)."""
    return {
        "logGroupName": group,
        "logStreamName": stream,
        "logEvents": [{"timestamp": e.ts_ns // 1_000_000, "message": e.raw} for e in events],
    }
