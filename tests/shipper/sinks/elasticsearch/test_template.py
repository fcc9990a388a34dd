"""The index template, the ILM policy builder, and the sink's options."""

from __future__ import annotations

import base64

import orjson
import pytest
from pydantic import ValidationError

from shipper.sinks.elasticsearch.template import ilm_policy, index_template, template_hash

from ._support import make_config


def test_template_maps_the_record_schema() -> None:
    body = index_template("ecvi-logs-*")
    assert body["index_patterns"] == ["ecvi-logs-*"]
    assert body["priority"] == 200
    assert "data_stream" not in body
    mappings = body["template"]["mappings"]
    props = mappings["properties"]
    assert props["@timestamp"] == {"type": "date"}
    assert props["timestamp"] == {"type": "date"}
    for name in ("level", "logger", "request_id", "user_id", "company_id", "task_id", "trace_id",
                 "service", "environment", "version"):
        assert props[name]["type"] == "keyword", name
    keyword = {"type": "keyword", "ignore_above": 1024}
    assert props["message"] == {"type": "text", "fields": {"keyword": keyword}}
    assert props["exception"]["properties"]["stacktrace"] == {"type": "text"}
    assert props["kubernetes"]["properties"]["pod_name"]["type"] == "keyword"
    assert mappings["dynamic_templates"] == [{"strings_as_keyword": {
        "match_mapping_type": "string", "mapping": {"type": "keyword", "ignore_above": 1024}}}]
    assert mappings["date_detection"] is False


def test_template_for_a_data_stream_with_ilm() -> None:
    body = index_template("ecvi-logs", data_stream=True, priority=300, ilm_policy="ecvi-30d")
    assert body["data_stream"] == {}
    assert body["priority"] == 300
    assert body["template"]["settings"]["index.lifecycle.name"] == "ecvi-30d"


def test_template_hash_is_stable_and_tracks_changes() -> None:
    a, b = index_template("x-*"), index_template("x-*")
    assert a["_meta"]["hash"] == b["_meta"]["hash"] == template_hash(orjson.loads(orjson.dumps(a)))
    assert index_template("y-*")["_meta"]["hash"] != a["_meta"]["hash"]
    assert a["_meta"]["managed_by"] == "ecvi-logs"


def test_ilm_policy() -> None:
    assert ilm_policy() == {"policy": {
        "phases": {"hot": {"min_age": "0ms", "actions": {}},
                   "delete": {"min_age": "30d", "actions": {"delete": {}}}},
        "_meta": {"managed_by": "ecvi-logs", "retention_days": 30}}}
    rolled = ilm_policy(7, rollover=True)["policy"]["phases"]
    assert rolled["hot"]["actions"]["rollover"] == {"max_age": "1d", "max_primary_shard_size": "50gb"}
    assert rolled["delete"]["min_age"] == "7d"
    with pytest.raises(ValueError):
        ilm_policy(0)


# -- options -------------------------------------------------------------------------------------

def test_defaults() -> None:
    cfg = make_config()
    assert cfg.index == "ecvi-logs-%Y.%m.%d" and cfg.mode == "index"
    assert cfg.index_pattern == "ecvi-logs-*"
    assert cfg.effective_template_name == "ecvi-logs"


@pytest.mark.parametrize(("index", "pattern", "name"), [
    ("app-{{ service }}-%Y.%m.%d", "app-*", "app"),
    ("logs-%Y.%m.%d-Ecvi", "logs-*-ecvi", "logs"),
    ("fixed", "fixed", "fixed"),
])
def test_index_pattern(index: str, pattern: str, name: str) -> None:
    cfg = make_config(index=index)
    assert (cfg.index_pattern, cfg.effective_template_name) == (pattern, name)


def test_data_stream_name() -> None:
    assert make_config(mode="data_stream").index == "ecvi-logs"
    assert make_config(mode="data_stream", index="logs-ecvi-prod").index_pattern == "logs-ecvi-prod"
    with pytest.raises(ValidationError, match="data stream name holds no strftime"):
        make_config(mode="data_stream", index="ecvi-%Y")


def test_api_key_header_and_secrecy() -> None:
    encoded = base64.b64encode(b"id1:s3cret").decode()
    assert make_config(api_key=encoded).auth_headers() == {"Authorization": f"ApiKey {encoded}"}
    assert make_config(api_key="id1:s3cret").auth_headers() == {"Authorization": f"ApiKey {encoded}"}
    cfg = make_config(api_key="id1:s3cret")
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(cfg.model_dump())
    with pytest.raises(ValidationError, match="either api_key or auth"):
        make_config(api_key="k", auth={"user": "u", "password": "p"})


def test_bad_options_are_named() -> None:
    with pytest.raises(ValidationError, match="endpoint must start with http"):
        make_config(endpoint="127.0.0.1:9200")
    with pytest.raises(ValidationError, match="compression"):
        make_config(compression="brotli")


def test_sink_template_names_the_configured_lifecycle_policy() -> None:
    from shipper.sinks.elasticsearch.config import ElasticsearchSinkConfig
    from shipper.sinks.elasticsearch.sink import ElasticsearchSink

    cfg = ElasticsearchSinkConfig.model_validate(
        {"type": "elasticsearch", "inputs": ["app"], "endpoint": "http://127.0.0.1:9200", "ilm_policy": "ecvi-logs-30d"}
    )
    sink = ElasticsearchSink("es", cfg, "/tmp")
    assert sink.template["template"]["settings"]["index.lifecycle.name"] == "ecvi-logs-30d"
    plain = ElasticsearchSink("es", cfg.model_copy(update={"ilm_policy": None}), "/tmp")
    assert "index.lifecycle.name" not in plain.template["template"]["settings"]
