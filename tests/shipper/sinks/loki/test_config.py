"""The loki sink's options: the contract keys, defaults, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipper.config import ConfigError, load_config, parse_config
from shipper.sinks.loki.config import DEFAULT_METADATA
from shipper.sinks.loki.sink import LokiSink

CONTRACT = Path(__file__).parents[2] / "fixtures" / "contract.yaml"


def test_contract_builds_a_loki_sink() -> None:
    cfg = load_config(CONTRACT).sinks["loki"]
    sink = LokiSink("loki", cfg, "/tmp")  # type: ignore[arg-type]
    assert sink.config.push_url == "http://127.0.0.1:3100/loki/api/v1/push"
    assert sink.config.encoding == "protobuf"
    assert sink.config.structured_metadata == DEFAULT_METADATA
    assert sink.encoder.metadata.names == ["request_id", "user_id", "company_id", "trace_id",
                                           "kubernetes_pod_name"]


def _problems(sink_yaml: str) -> dict[str, str]:
    text = f"sources:\n  app: {{type: file, include: [x]}}\nsinks:\n  l: {sink_yaml}\n"
    with pytest.raises(ConfigError) as exc:
        parse_config(text, env={})
    return dict(exc.value.problems)


def test_errors_name_the_key() -> None:
    problems = _problems("{type: loki, inputs: [app], endpoint: 127.0.0.1:3100, labels: {}, "
                         "structured_metadata: [a.b, a_b, 'bad path'], encoding: xml}")
    assert "http://" in problems["sinks.l.endpoint"]
    assert "at least one label" in problems["sinks.l.labels"]
    assert "bad path" in problems["sinks.l.structured_metadata"]
    assert "sinks.l.encoding" in problems


def test_metadata_name_clash_is_an_error() -> None:
    problems = _problems("{type: loki, inputs: [app], endpoint: 'http://x', structured_metadata: [a.b, a_b]}")
    assert "a_b" in problems["sinks.l.structured_metadata"]


def test_endpoint_trailing_slash_and_custom_path() -> None:
    cfg = parse_config("sources:\n  app: {type: file, include: [x]}\nsinks:\n"
                       "  l: {type: loki, inputs: [app], endpoint: 'https://logs.example/', path: api/push}\n",
                       env={}).sinks["l"]
    assert cfg.push_url == "https://logs.example/api/push"  # type: ignore[union-attr]
