"""Options of the ``cloudwatch`` sink."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from shipper.sinks._common.config import SinkConfigBase
from shipper.sinks.cloudwatch.limits import (
    INVALID_GROUP_CHARS,
    INVALID_STREAM_CHARS,
    MAX_EVENT_BYTES,
    MAX_NAME_LENGTH,
    RESERVED_GROUP_PREFIX,
    RETENTION_DAYS,
)

DEFAULT_GROUPS_PER_POD = 5
DEFAULT_STREAMS_PER_POD = 20

_TEMPLATE_FIELD = re.compile(r"\{\{.*?\}\}")


class CloudWatchSinkConfig(SinkConfigBase):
    """PutLogEvents to CloudWatch Logs, group and stream from templates, created on demand."""

    type: Literal["cloudwatch"]
    SINK_CLASS: ClassVar[str] = "shipper.sinks.cloudwatch.sink:CloudWatchSink"
    region: str = Field(..., description="AWS region, e.g. us-east-1.")
    endpoint: str | None = Field(
        None, description="Endpoint override (testing, VPC endpoints); AWS_ENDPOINT_URL also works."
    )
    group: str = Field(..., description="Log group name template.")
    stream: str = Field(..., description="Log stream name template, e.g. '{{ kubernetes.pod_name }}'.")
    create_missing: bool = Field(True, description="Create groups and streams that do not exist.")
    retention_days: int | None = Field(
        30, description="Retention set on groups this sink creates (one of AWS's values); null: never expire."
    )
    profile: str | None = Field(None, description="AWS profile; otherwise the standard credential chain.")
    missing_value: str = Field(
        "unknown",
        min_length=1,
        description="Used for a template field the event lacks (or renders empty), e.g. a stream for "
        "events without kubernetes metadata.",
    )
    max_groups: int = Field(
        100, ge=1,
        description="When 'group' has '{{ field }}' parts: distinct groups per hour before events go to the "
        "overflow group (the template with every field '__overflow__').",
    )
    max_groups_per_pod: int | None = Field(
        None, ge=1, description="Of those, how many new groups one pod (or, without pod metadata, one source) "
        f"may bring per hour; its further ones overflow, nobody else's. Default: {DEFAULT_GROUPS_PER_POD}, "
        "at most half of max_groups.",
    )
    max_streams: int = Field(
        1000, ge=1,
        description="Distinct (group, stream) pairs per hour before events go to the overflow stream of "
        "their group (the stream template with every field '__overflow__').",
    )
    max_streams_per_pod: int | None = Field(
        None, ge=1, description="Of those, how many new streams one pod (or one source) may bring per hour. "
        f"Default: {DEFAULT_STREAMS_PER_POD}, at most half of max_streams.",
    )
    max_event_bytes: int = Field(
        MAX_EVENT_BYTES,
        ge=1024,
        le=MAX_EVENT_BYTES,
        description="Largest event AWS takes: message UTF-8 bytes plus 26; longer messages are truncated "
        "with a marker. 1 MiB today; 262144 where the older 256 KiB limit still applies.",
    )

    @field_validator("retention_days")
    @classmethod
    def _known_retention(cls, v: int | None) -> int | None:
        if v is not None and v not in RETENTION_DAYS:
            allowed = ", ".join(str(d) for d in sorted(RETENTION_DAYS))
            raise ValueError(f"{v} is not a retention CloudWatch Logs accepts; use one of {allowed} or null")
        return v

    @field_validator("group")
    @classmethod
    def _valid_group(cls, v: str) -> str:
        _check_name("log group", v, INVALID_GROUP_CHARS, "letters, digits and . - _ / #")
        if v[:4].lower() == RESERVED_GROUP_PREFIX:
            raise ValueError(f"log group names cannot start with {RESERVED_GROUP_PREFIX!r} (reserved by AWS)")
        return v

    @field_validator("stream")
    @classmethod
    def _valid_stream(cls, v: str) -> str:
        _check_name("log stream", v, INVALID_STREAM_CHARS, "anything but ':' and '*'")
        return v


def _check_name(what: str, template: str, invalid: re.Pattern[str], allowed: str) -> None:
    """The literal text of a name template must already be a valid name (fields are sanitised)."""
    literal = _TEMPLATE_FIELD.sub("", template)
    if not template.strip():
        raise ValueError(f"{what} name must not be empty")
    if len(literal) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} name is longer than {MAX_NAME_LENGTH} characters")
    bad = sorted(set(invalid.findall(literal)))
    if bad:
        raise ValueError(f"{what} name has invalid character(s) {bad}: allowed are {allowed}")
