"""Options of the ``cloudwatch`` sink."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shipper.sinks._common.config import SinkConfigBase


class CloudWatchSinkConfig(SinkConfigBase):
    """PutLogEvents to CloudWatch Logs, group and stream from templates, created on demand."""

    type: Literal["cloudwatch"]
    region: str = Field(..., description="AWS region, e.g. us-east-1.")
    endpoint: str | None = Field(None, description="Endpoint override (testing, VPC endpoints).")
    group: str = Field(..., description="Log group name template.")
    stream: str = Field(..., description="Log stream name template, e.g. '{{ kubernetes.pod_name }}'.")
    create_missing: bool = Field(True, description="Create groups and streams that do not exist.")
    retention_days: int | None = Field(30, description="Retention set on groups this sink creates.")
    profile: str | None = Field(None, description="AWS profile; otherwise the standard credential chain.")
