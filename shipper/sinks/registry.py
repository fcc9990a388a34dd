"""The one list of sink types: each config class names its tag (``type``) and its sink class.

The config union (``shipper.config.model``), the loader's tag table and :func:`build_sink` are all
derived from :data:`AnySinkConfig`, so adding a sink means writing its folder and adding its config
class here, nowhere else.
"""

from __future__ import annotations

import importlib
from typing import get_args

from pydantic import BaseModel

from shipper.sinks._common.base import Sink
from shipper.sinks.cloudwatch.config import CloudWatchSinkConfig
from shipper.sinks.elasticsearch.config import ElasticsearchSinkConfig
from shipper.sinks.file.config import FileSinkConfig
from shipper.sinks.loki.config import LokiSinkConfig
from shipper.sinks.s3.config import S3SinkConfig

AnySinkConfig = LokiSinkConfig | ElasticsearchSinkConfig | CloudWatchSinkConfig | FileSinkConfig | S3SinkConfig
"""Every sink's config class; the ``type`` literal of each is its tag."""

SINK_CONFIGS: tuple[type[AnySinkConfig], ...] = get_args(AnySinkConfig)


def config_tag(config_class: type[BaseModel]) -> str:
    """The ``type`` a component's config class accepts (its ``Literal["..."]``)."""
    field = config_class.model_fields["type"]
    (tag,) = get_args(field.annotation)
    return str(tag)


# Tag -> "module:Class" of the sink, imported only when a sink of that type is built.
_IMPLEMENTATIONS: dict[str, str] = {config_tag(c): c.SINK_CLASS for c in SINK_CONFIGS}

SINK_TAGS: frozenset[str] = frozenset(_IMPLEMENTATIONS)


def build_sink(name: str, config: AnySinkConfig, data_dir: str) -> Sink:
    """Instantiate the sink class registered for ``config.type``."""
    module, _, cls = _IMPLEMENTATIONS[config.type].partition(":")
    sink_cls: type[Sink] = getattr(importlib.import_module(module), cls)
    return sink_cls(name, config, data_dir)
