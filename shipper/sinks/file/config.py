"""Options of the ``file`` sink."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shipper.sinks._common.config import SinkConfigBase


class FileSinkConfig(SinkConfigBase):
    """Append events as NDJSON lines to a local file whose path may hold strftime fields (UTC)."""

    type: Literal["file"]
    SINK_CLASS: ClassVar[str] = "shipper.sinks.file.sink:FileSink"
    path: str = Field(..., description="Output path; strftime fields use the event's time, e.g. %Y-%m-%d.")
    encoding: Literal["raw", "event"] = Field(
        "raw", description="raw: the original line; event: {timestamp, record, meta} as JSON."
    )
    fsync: bool = Field(False, description="fsync each batch before counting it delivered.")
