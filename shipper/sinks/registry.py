"""Builds a sink object from its config (each sink lives in its own folder)."""

from __future__ import annotations

import importlib

from shipper.sinks._common.base import Sink

_IMPLEMENTATIONS = {
    "file": "shipper.sinks.file.sink:FileSink",
    "loki": "shipper.sinks.loki.sink:LokiSink",
    "elasticsearch": "shipper.sinks.elasticsearch.sink:ElasticsearchSink",
    "cloudwatch": "shipper.sinks.cloudwatch.sink:CloudWatchSink",
    "s3": "shipper.sinks.s3.sink:S3Sink",
}


def build_sink(name: str, config: object, data_dir: str) -> Sink:
    """Instantiate the sink class for ``config.type``."""
    module, _, cls = _IMPLEMENTATIONS[config.type].partition(":")  # type: ignore[attr-defined]
    sink_cls: type[Sink] = getattr(importlib.import_module(module), cls)
    return sink_cls(name, config, data_dir)
