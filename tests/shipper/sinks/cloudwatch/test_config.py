"""Options of the cloudwatch sink: the contract keys, retention values, names."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shipper.sinks.cloudwatch.config import CloudWatchSinkConfig
from shipper.sinks.cloudwatch.sink import CloudWatchSink
from shipper.sinks.registry import build_sink
from tests.shipper.sinks.cloudwatch._support import make_config


def test_contract_line_validates_with_defaults() -> None:
    cfg = CloudWatchSinkConfig.model_validate({
        "type": "cloudwatch", "inputs": ["app"], "region": "us-east-1", "endpoint": "http://127.0.0.1:5000",
        "group": "/ecvi/backend", "stream": "{{ kubernetes.pod_name }}",
    })
    assert cfg.retention_days == 30
    assert cfg.create_missing is True
    assert cfg.max_event_bytes == 1_048_576
    assert cfg.missing_value == "unknown"


@pytest.mark.parametrize("days", [1, 3, 5, 7, 14, 30, 60, 90, 365, 731, 3653, None])
def test_allowed_retention(days: int | None) -> None:
    assert make_config(retention_days=days).retention_days == days


@pytest.mark.parametrize("days", [0, 2, 31, 366, 3650, -1])
def test_retention_aws_does_not_accept_is_refused(days: int) -> None:
    with pytest.raises(ValidationError) as err:
        make_config(retention_days=days)
    assert "one of 1, 3, 5, 7, 14, 30" in str(err.value)
    assert err.value.errors()[0]["loc"] == ("retention_days",)


def test_group_names() -> None:
    assert make_config(group="/ecvi/{{ service }}-logs").group == "/ecvi/{{ service }}-logs"
    with pytest.raises(ValidationError, match="invalid character"):
        make_config(group="/ecvi/back end")
    with pytest.raises(ValidationError, match="must not be empty"):
        make_config(group="")


def test_stream_names() -> None:
    assert make_config(stream="{{ kubernetes.namespace }}/{{ kubernetes.pod_name }}").stream
    with pytest.raises(ValidationError, match="invalid character"):
        make_config(stream="pod:{{ kubernetes.pod_name }}")


def test_max_event_bytes_bounded_by_aws() -> None:
    assert make_config(max_event_bytes=262_144).max_event_bytes == 262_144
    with pytest.raises(ValidationError):
        make_config(max_event_bytes=2_000_000)


def test_unknown_keys_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        make_config(log_group="/x")


def test_registry_builds_this_sink(tmp_path: object) -> None:
    sink = build_sink("cw", make_config(), str(tmp_path))
    assert isinstance(sink, CloudWatchSink)
