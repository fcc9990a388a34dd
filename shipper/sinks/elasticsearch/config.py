"""Options of the ``elasticsearch`` sink."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shipper.sinks._common.config import SinkConfigBase
from shipper.sinks._common.http import HttpAuthConfig, TlsConfig


class ElasticsearchSinkConfig(SinkConfigBase):
    """Bulk-create documents with deterministic ids into daily indices or a data stream."""

    type: Literal["elasticsearch"]
    endpoint: str = Field(..., description="URL of Elasticsearch, e.g. http://127.0.0.1:9200.")
    index: str = Field("ecvi-logs-%Y.%m.%d", description="Index name; strftime fields use the event time.")
    mode: Literal["index", "data_stream"] = Field("index", description="Daily indices or a data stream.")
    install_template: bool = Field(True, description="Install the index template at start.")
    api_key: str | None = Field(None, description="Elasticsearch API key (encoded form).")
    auth: HttpAuthConfig | None = None
    tls: TlsConfig | None = None
