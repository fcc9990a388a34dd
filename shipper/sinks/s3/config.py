"""Options of the ``s3`` sink."""

from __future__ import annotations

import os
import re
import socket
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from shipper.archive.storage.url import parse_store_url
from shipper.sinks._common.config import BatchConfig, SinkConfigBase

_NODE_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_node() -> str:
    """``NODE_NAME`` (set from the pod spec's ``spec.nodeName``), else the host name."""
    return os.environ.get("NODE_NAME") or socket.gethostname() or "unknown"


class S3SinkConfig(SinkConfigBase):
    """Write events to ``<url>/date=YYYY-MM-DD/hour=HH/node=<node>/<name>.ndjson.gz``.

    Each batch becomes one object per (day, hour) of its events, named from the events' ids, so a
    resent batch overwrites its own object. ``ecvi-logs archive seal`` later writes each day's
    manifest over these objects.
    """

    type: Literal["s3"]
    SINK_CLASS: ClassVar[str] = "shipper.sinks.s3.sink:S3Sink"
    url: str = Field(..., description="Archive root: s3://bucket/prefix, or file:///dir for a local directory.")
    region: str | None = Field(None, description="AWS region of the bucket.")
    endpoint: str | None = Field(None, description="S3 endpoint override (MinIO, tests); AWS_ENDPOINT_URL works too.")
    profile: str | None = Field(None, description="AWS profile; otherwise the standard credential chain.")
    node: str = Field(
        default_factory=default_node,
        validate_default=True,
        description="The node= partition: NODE_NAME, else the host name (one writer per node).",
    )
    compression_level: int = Field(6, ge=1, le=9, description="gzip level of the objects.")
    object_lock: Literal["compliance", "governance"] | None = Field(
        None, description="S3 Object Lock mode put on every object (the bucket must have Object Lock)."
    )
    lock_days: int | None = Field(None, ge=1, description="Object Lock retention in days.")
    batch: BatchConfig = Field(
        default_factory=lambda: BatchConfig(max_events=100_000, max_bytes=32 * 1024 * 1024, timeout_secs=60.0),
        description="One object per batch (and hour): larger, fewer objects than the HTTP sinks send.",
    )

    @field_validator("url")
    @classmethod
    def _valid_url(cls, v: str) -> str:
        parse_store_url(v)
        return v

    @field_validator("node")
    @classmethod
    def _clean_node(cls, v: str) -> str:
        clean = _NODE_UNSAFE.sub("_", v).strip("._")
        if not clean:
            raise ValueError("node must hold at least one letter or digit")
        return clean

    @model_validator(mode="after")
    def _lock(self) -> S3SinkConfig:
        if (self.object_lock is None) != (self.lock_days is None):
            raise ValueError("object_lock and lock_days go together")
        if self.object_lock is not None and self.url.startswith("file:"):
            raise ValueError("object_lock needs an s3:// url")
        return self
