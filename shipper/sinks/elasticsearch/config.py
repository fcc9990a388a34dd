"""Options of the ``elasticsearch`` sink."""

from __future__ import annotations

import base64
import re
import time
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from shipper.sinks._common.config import SinkConfigBase
from shipper.sinks._common.http import HttpAuthConfig, TlsConfig
from shipper.sinks.elasticsearch.names import (
    DEFAULT_INDICES_PER_POD,
    DEFAULT_MAX_INDICES,
    INVALID_INDEX_CHARS,
    INVALID_LEAD,
    MAX_INDEX_BYTES,
)

DEFAULT_INDEX = "ecvi-logs-%Y.%m.%d"
DEFAULT_DATA_STREAM = "ecvi-logs"

_VARIABLE = re.compile(r"%.|\{\{[^}]*\}\}")
_FIELD = re.compile(r"\{\{[^}]*\}\}")
_DIRECTIVE = re.compile(r"%.")


class ElasticsearchSinkConfig(SinkConfigBase):
    """Bulk-create documents with deterministic ids into daily indices or a data stream."""

    type: Literal["elasticsearch"]
    SINK_CLASS: ClassVar[str] = "shipper.sinks.elasticsearch.sink:ElasticsearchSink"
    endpoint: str = Field(..., description="URL of Elasticsearch, e.g. http://127.0.0.1:9200.")
    index: str = Field(
        DEFAULT_INDEX,
        description="Index name; strftime fields use the event's UTC time and '{{ field }}' templates "
        "the event's fields (lower-cased, characters Elasticsearch forbids as '_', a leading - _ + . dropped, "
        "at most max_indices distinct per hour). In data_stream mode: the data stream name "
        f"(default {DEFAULT_DATA_STREAM}).",
    )
    mode: Literal["index", "data_stream"] = Field("index", description="Daily indices or a data stream.")
    install_template: bool = Field(
        True, description="Install (or update) the index template before the first write."
    )
    template_name: str | None = Field(
        None, description="Name of the index template; default: the index name up to its first variable."
    )
    template_priority: int = Field(
        200, ge=0, description="Priority of the index template (above the built-in logs-*-* at 100)."
    )
    max_indices: int = Field(
        DEFAULT_MAX_INDICES, ge=1,
        description="When 'index' has '{{ field }}' parts: distinct values of them per hour before events "
        "go to the overflow index (the template with every field '__overflow__').",
    )
    max_indices_per_pod: int | None = Field(
        None, ge=1,
        description="Of those, how many new ones one pod (or, without pod metadata, one source) may "
        "bring per hour; its further ones go to the overflow index, nobody else's. "
        f"Default: {DEFAULT_INDICES_PER_POD}, at most half of max_indices.",
    )
    compression: Literal["none", "gzip"] = Field("none", description="Compress bulk request bodies.")
    ilm_policy: str | None = Field(
        None,
        description="Lifecycle policy named in the index template the sink installs (e.g. ecvi-logs-30d, "
        "installed by `ecvi-logs retention apply`); set it on clusters with ILM so the sink's template "
        "and the retention job's agree.",
    )
    api_key: SecretStr | None = Field(
        None, description="Elasticsearch API key: the encoded form, or 'id:api_key'."
    )
    auth: HttpAuthConfig | None = None
    tls: TlsConfig | None = None

    @field_validator("index")
    @classmethod
    def _valid_index_name(cls, v: str) -> str:
        """The operator's literal text must already be valid: only field values are cleaned."""
        literal = _FIELD.sub("", v)
        fields = len(_FIELD.findall(v))
        bad = sorted(set(INVALID_INDEX_CHARS.findall(_DIRECTIVE.sub("", literal))))
        if bad:
            raise ValueError(f"Elasticsearch index names cannot hold {bad} (nor \\ / * ? \" < > | space , # :)")
        if v[:1] and v[0] in INVALID_LEAD:
            raise ValueError(f"Elasticsearch index names cannot start with '-', '_', '+' or '.': {v!r}")
        size = len(time.strftime(literal, time.gmtime(0)).encode("utf-8")) + fields
        if size > MAX_INDEX_BYTES:
            raise ValueError(f"index name is longer than {MAX_INDEX_BYTES} bytes")
        return v

    @model_validator(mode="after")
    def _check(self) -> ElasticsearchSinkConfig:
        if self.mode == "data_stream":
            if "index" not in self.model_fields_set:
                self.index = DEFAULT_DATA_STREAM
            elif "%" in self.index:
                raise ValueError(
                    "index: a data stream name holds no strftime fields (Elasticsearch rolls its "
                    f"backing indices over itself); use a fixed name such as {DEFAULT_DATA_STREAM!r}"
                )
        if self.api_key is not None and self.auth is not None:
            raise ValueError("set either api_key or auth, not both")
        if not self.endpoint.startswith(("http://", "https://")):
            raise ValueError("endpoint must start with http:// or https://")
        return self

    @property
    def index_pattern(self) -> str:
        """The indices this sink writes, as an index-template pattern (``ecvi-logs-*``)."""
        found = list(_VARIABLE.finditer(self.index))
        if not found:
            return self.index.lower()
        return (self.index[: found[0].start()] + "*" + self.index[found[-1].end() :]).lower()

    @property
    def effective_template_name(self) -> str:
        if self.template_name:
            return self.template_name
        name = self.index_pattern.split("*", 1)[0].rstrip("-_.")
        return name or "ecvi-logs"

    def auth_headers(self) -> dict[str, str]:
        """The ``Authorization`` header for ``api_key`` (an ``id:key`` pair is encoded here)."""
        if self.api_key is None:
            return {}
        key = self.api_key.get_secret_value()
        if ":" in key:
            key = base64.b64encode(key.encode()).decode()
        return {"Authorization": f"ApiKey {key}"}
