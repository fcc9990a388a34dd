"""Options every sink shares: inputs, batching, request/retry policy, disk buffer, dead letters."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BatchConfig(_Strict):
    """When a batch is sent: whichever limit is reached first."""

    max_events: int = Field(1000, ge=1, description="Most events in one request.")
    max_bytes: int = Field(1_048_576, ge=1024, description="Most encoded event bytes in one request.")
    timeout_secs: float = Field(1.0, gt=0, description="Longest wait to fill a batch before sending.")


class RetryConfig(_Strict):
    """Exponential backoff with full jitter for transient failures."""

    initial_backoff_secs: float = Field(0.2, gt=0, description="First retry waits up to this long.")
    max_backoff_secs: float = Field(30.0, gt=0, description="Upper bound of one wait.")
    max_attempts: int | None = Field(
        None, ge=1, description="Give up (dead-letter) after this many attempts; unset retries forever."
    )


class RequestConfig(_Strict):
    """How requests are made."""

    concurrency: int = Field(2, ge=1, le=64, description="Requests in flight at once.")
    timeout_secs: float = Field(30.0, gt=0, description="Timeout of one request.")
    retry: RetryConfig = Field(default_factory=RetryConfig)


class BufferConfig(_Strict):
    """The sink's durable disk buffer between sources and the backend."""

    max_bytes: int = Field(256 * 1024 * 1024, ge=1024 * 1024, description="Capacity on disk.")
    when_full: Literal["block", "drop_newest"] = Field(
        "block", description="block: hold sources back (no loss); drop_newest: drop and count."
    )
    fsync: Literal["always", "interval", "never"] = Field(
        "interval",
        description="always: fsync every write before acknowledging; interval: fsync before each "
        "checkpoint save (survives node crashes up to the last checkpoint); never: page cache only.",
    )
    segment_bytes: int = Field(32 * 1024 * 1024, ge=64 * 1024, description="Size of one segment file.")


class SinkConfigBase(_Strict):
    """Fields every sink has."""

    inputs: list[str] = Field(..., min_length=1, description="Sources or transforms feeding this sink.")
    batch: BatchConfig = Field(default_factory=BatchConfig)
    request: RequestConfig = Field(default_factory=RequestConfig)
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    healthcheck: bool = Field(True, description="Check the backend at start and report it on /ready.")

    @field_validator("inputs")
    @classmethod
    def _unique_inputs(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("inputs must not repeat a name")
        return v
