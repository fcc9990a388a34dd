"""Loki retention settings: generated, merged into a config file, and checked against /config."""

from datetime import timedelta
from typing import Any

import httpx
import pytest
import yaml

from shipper.jobs.http import JobHttp
from shipper.jobs.retention.loki import (
    StreamRetention,
    check_config,
    check_running,
    merge_settings,
    parse_duration,
    retention_settings,
)

# Trimmed from GET /config of Loki 3.7.6 (the integration tests' server): durations come back as
# Go durations ("2h0m0s") and Prometheus model durations ("30d", "1w").
RECORDED_CONFIG = """
compactor:
  working_directory: /data/compactor
  compaction_interval: 1m0s
  apply_retention_interval: 1m30s
  retention_enabled: true
  retention_delete_delay: 2h0m0s
  retention_delete_worker_count: 150
  delete_request_store: filesystem
  delete_request_store_key_prefix: index/
limits_config:
  reject_old_samples: true
  reject_old_samples_max_age: 1w
  max_entries_limit_per_query: 5000
  retention_period: 30d
"""


@pytest.mark.parametrize(("text", "expected"), [
    ("30d", timedelta(days=30)), ("720h", timedelta(days=30)), ("1w", timedelta(weeks=1)),
    ("2h0m0s", timedelta(hours=2)), ("1m30s", timedelta(seconds=90)), ("0s", timedelta(0)), ("0", timedelta(0)),
    ("500ms", timedelta(milliseconds=500)),
])
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_bad_duration() -> None:
    with pytest.raises(ValueError):
        parse_duration("30 days")


def test_settings_for_30_days_with_a_stream_override() -> None:
    debug = StreamRetention.parse('{level="debug"}=7d:2')
    assert debug == StreamRetention('{level="debug"}', 7, 2)
    settings = retention_settings(30, [debug])
    assert settings == {
        "compactor": {"retention_enabled": True, "delete_request_store": "filesystem", "retention_delete_delay": "2h"},
        "limits_config": {"retention_period": "720h",
                          "retention_stream": [{"selector": '{level="debug"}', "priority": 2, "period": "168h"}]},
    }
    with pytest.raises(ValueError, match="SELECTOR=DAYSd"):
        StreamRetention.parse("level=debug=7")


def test_merge_keeps_the_rest_of_the_config_and_the_object_store() -> None:
    config: dict[str, Any] = {"server": {"http_listen_port": 3100},
              "compactor": {"working_directory": "/loki/compactor", "delete_request_store": "s3"},
              "limits_config": {"retention_period": "0s", "ingestion_rate_mb": 8,
                                "retention_stream": [{"selector": "{a=\"b\"}", "priority": 1, "period": "24h"}]}}
    merged = merge_settings(config, retention_settings(30))
    assert merged["server"] == {"http_listen_port": 3100}
    assert merged["compactor"] == {"working_directory": "/loki/compactor", "delete_request_store": "s3",
                                   "retention_enabled": True, "retention_delete_delay": "2h"}
    assert merged["limits_config"] == {"retention_period": "720h", "ingestion_rate_mb": 8}
    assert config["limits_config"]["retention_period"] == "0s"  # the input is not changed
    assert all(f.ok for f in check_config(merged, 30))


def test_check_the_recorded_effective_config() -> None:
    config = yaml.safe_load(RECORDED_CONFIG)
    assert [f for f in check_config(config, 30) if not f.ok] == []
    drift = [f for f in check_config(config, 14) if not f.ok]
    assert [(f.setting, f.expected, f.actual) for f in drift] == [("limits_config.retention_period", "336h", "30d")]


def test_check_reports_what_is_missing_or_unexpected() -> None:
    config = {"compactor": {"retention_enabled": False},
              "limits_config": {"retention_period": "0s",
                                "retention_stream": [{"selector": '{level="debug"}', "priority": 1, "period": "72h"}]}}
    findings = {f.setting: f for f in check_config(config, 30, [StreamRetention('{app="audit"}', 90)])}
    assert not findings["compactor.retention_enabled"].ok
    assert not findings["compactor.delete_request_store"].ok
    assert "forever" in findings["limits_config.retention_period"].note
    assert findings['limits_config.retention_stream[{level="debug"}]'].expected == "(not in the policy)"
    assert findings['limits_config.retention_stream[{app="audit"}]'].actual == "(missing)"


def test_check_a_running_loki() -> None:
    runtime = "overrides:\n  tenant-a:\n    retention_period: 744h\n  tenant-b:\n    ingestion_rate_mb: 4\n"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/config":
            return httpx.Response(200, text=RECORDED_CONFIG, headers={"Content-Type": "text/plain; charset=utf-8"})
        if request.url.path == "/runtime_config":
            return httpx.Response(200, text=runtime)
        return httpx.Response(404)

    http = JobHttp("http://loki.test", what="Loki", transport=httpx.MockTransport(handler))
    findings = check_running(http, 30)
    assert [(f.target, f.setting, f.ok) for f in findings if not f.ok] == [
        ("http://loki.test/runtime_config", "overrides.tenant-a.retention_period", False)]
    runtime = ""
    assert all(f.ok for f in check_running(http, 30))
