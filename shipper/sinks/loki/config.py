"""Options of the ``loki`` sink."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from shipper.sinks._common.config import SinkConfigBase
from shipper.sinks._common.http import HttpAuthConfig, TlsConfig
from shipper.sinks.loki.labels import DEFAULT_MAX_STREAMS, DEFAULT_STREAMS_PER_POD, DEFAULT_VALUES_PER_POD

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
FIELD_PATH = re.compile(r"^[A-Za-z0-9_@\-]+(\.[A-Za-z0-9_@\-]+)*$")
DEFAULT_METADATA = ["request_id", "user_id", "company_id", "trace_id", "kubernetes.pod_name"]


class LokiSinkConfig(SinkConfigBase):
    """Push to Grafana Loki's ``/loki/api/v1/push``."""

    type: Literal["loki"]
    SINK_CLASS: ClassVar[str] = "shipper.sinks.loki.sink:LokiSink"
    endpoint: str = Field(..., description="Base URL of Loki, e.g. http://127.0.0.1:3100.")
    path: str = Field("/loki/api/v1/push", description="Push path.")
    tenant_id: str | None = Field(None, description="Sent as X-Scope-OrgID (multi-tenant Loki).")
    labels: dict[str, str] = Field(
        default_factory=lambda: {"service": "{{ service }}"},
        description="Stream labels; values are templates such as '{{ level }}' (a missing field "
        "renders as 'unknown'). Kubernetes fields are labels only when templated here, e.g. "
        "'{{ kubernetes.namespace }}'.",
    )
    structured_metadata: list[str] = Field(
        default_factory=lambda: list(DEFAULT_METADATA),
        description="Field paths sent as structured metadata (high-cardinality ids belong here, not "
        "in labels); looked up in the record, then the event's metadata. Names are the path with "
        "other characters than [a-zA-Z0-9_] as '_' (kubernetes.pod_name -> kubernetes_pod_name).",
    )
    encoding: Literal["protobuf", "json"] = Field("protobuf", description="protobuf+snappy or json+gzip.")
    max_label_values: int = Field(
        500, ge=1, description="Cardinality guard: distinct values per label per hour before overflow."
    )
    max_label_values_per_pod: int | None = Field(
        None, ge=1,
        description="Of those, how many new values one pod (or, without pod metadata, one source) may "
        "bring per label per hour; its further new values become '__overflow__', nobody else's. "
        f"Default: {DEFAULT_VALUES_PER_POD}, at most half of max_label_values.",
    )
    max_streams: int = Field(
        DEFAULT_MAX_STREAMS, ge=1,
        description="Distinct label sets (streams) per hour; further new ones go to the stream whose "
        "labels are all '__overflow__'.",
    )
    max_streams_per_pod: int | None = Field(
        None, ge=1,
        description="Of those, how many new streams one pod (or one source) may bring per hour. "
        f"Default: {DEFAULT_STREAMS_PER_POD}, at most half of max_streams.",
    )
    auth: HttpAuthConfig | None = None
    tls: TlsConfig | None = None

    @field_validator("labels")
    @classmethod
    def _valid_label_names(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("at least one label is needed: Loki rejects a stream without labels")
        bad = [k for k in v if not LABEL_NAME.match(k)]
        if bad:
            raise ValueError(f"invalid label name(s) {bad}: must match [a-zA-Z_][a-zA-Z0-9_]*")
        return v

    @field_validator("structured_metadata")
    @classmethod
    def _valid_metadata_paths(cls, v: list[str]) -> list[str]:
        bad = [p for p in v if not FIELD_PATH.match(p)]
        if bad:
            raise ValueError(f"invalid field path(s) {bad}: use dotted names such as kubernetes.pod_name")
        names = [re.sub(r"[^a-zA-Z0-9_]", "_", p) for p in v]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise ValueError(f"field paths map to the same structured metadata name: {clashes}")
        return v

    @field_validator("endpoint")
    @classmethod
    def _http_endpoint(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"endpoint {v!r} must start with http:// or https://")
        return v.rstrip("/")

    @property
    def push_url(self) -> str:
        return self.endpoint + "/" + self.path.lstrip("/")
