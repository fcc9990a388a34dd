"""Options of the transforms."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _TransformBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: list[str] = Field(..., min_length=1, description="Sources or transforms feeding this one.")


class AddFieldsConfig(_TransformBase):
    """Set fields on every record (values are templates)."""

    type: Literal["add_fields"]
    fields: dict[str, Any] = Field(..., description="Field name to value or template.")
    overwrite: bool = Field(False, description="Replace fields the record already has.")


class FilterConfig(_TransformBase):
    """Keep only events whose level is at least ``min_level`` and whose fields match ``match``."""

    type: Literal["filter"]
    min_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] | None = Field(
        None, description="Keep events at this level or above (an event without a known level counts as INFO)."
    )
    match: dict[str, str] = Field(default_factory=dict, description="Field path to required value.")


class RedactConfig(_TransformBase):
    """Redact secret keys (at any depth) and bearer/basic credentials inside strings."""

    type: Literal["redact"]
    keys: list[str] = Field(default_factory=list, description="Extra key names to redact.")
