"""Each sink is registered once (its config class); the config union, the loader and the builder agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from shipper.config import ConfigError, parse_config
from shipper.config.model import COMPONENT_TAGS, ShipperConfig
from shipper.sinks._common.base import Sink
from shipper.sinks.registry import SINK_CONFIGS, SINK_TAGS, build_sink, config_tag

# The smallest valid options of each sink type. A sink added to the registry without an entry here
# fails test_every_sink_has_a_minimal_config, so the tests below cover it too.
MINIMAL_SINKS: dict[str, dict[str, Any]] = {
    "loki": {"endpoint": "http://127.0.0.1:3100"},
    "elasticsearch": {"endpoint": "http://127.0.0.1:9200"},
    "cloudwatch": {"region": "us-east-1", "endpoint": "http://127.0.0.1:5000", "group": "/ecvi", "stream": "s"},
    "file": {"path": "./out.ndjson"},
    "s3": {"url": "file:///tmp/ecvi-archive"},
}


def config_with_sink(tag: str, **extra: Any) -> dict[str, Any]:
    return {
        "sources": {"app": {"type": "file", "include": ["/var/log/containers/*.log"]}},
        "sinks": {"out": {"type": tag, "inputs": ["app"], **MINIMAL_SINKS[tag], **extra}},
    }


def test_every_sink_has_a_minimal_config() -> None:
    assert set(MINIMAL_SINKS) == SINK_TAGS


def test_tags_are_derived_from_the_config_classes() -> None:
    assert {config_tag(c) for c in SINK_CONFIGS} == SINK_TAGS
    assert SINK_TAGS <= COMPONENT_TAGS
    assert {"file", "forward", "add_fields", "filter", "redact"} <= COMPONENT_TAGS
    sink_union = get_args(ShipperConfig.model_fields["sinks"].annotation)[1]
    assert set(get_args(get_args(sink_union)[0])) == set(SINK_CONFIGS)


@pytest.mark.parametrize("tag", sorted(MINIMAL_SINKS))
def test_every_sink_type_builds_its_own_sink(tag: str, tmp_path: Path) -> None:
    cfg = ShipperConfig.model_validate(config_with_sink(tag))
    scfg = cfg.sinks["out"]
    sink = build_sink("out", scfg, str(tmp_path))
    assert isinstance(sink, Sink)
    assert sink.config is scfg
    assert type(sink).__module__.startswith(f"shipper.sinks.{tag}.")
    # The sink class is declared for exactly this config class (Sink[<its config>]).
    declared = {get_args(b)[0] for b in type(sink).__orig_bases__}  # type: ignore[attr-defined]
    assert declared == {type(scfg)}


@pytest.mark.parametrize("tag", sorted(MINIMAL_SINKS))
def test_errors_of_every_sink_type_name_the_key_without_the_tag(tag: str) -> None:
    text = yaml.safe_dump(config_with_sink(tag, no_such_option=1))
    with pytest.raises(ConfigError) as info:
        parse_config(text, "t.yaml", {})
    assert "sinks.out.no_such_option" in str(info.value)
    assert f"sinks.out.{tag}" not in str(info.value)
