"""The shipped schema, and trace/span ids from OpenTelemetry (optional) or a custom source."""

from __future__ import annotations

import logging
import sys

import jsonschema
import pytest

import logging_config
from logging_config import _trace

from .conftest import Output

log = logging.getLogger("app.trace")


def test_schema_is_valid_draft_2020_12_and_a_fresh_copy() -> None:
    schema = logging_config.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    schema["required"].append("mutated")
    assert "mutated" not in logging_config.schema()["required"]


def test_schema_rejects_lines_that_break_the_contract() -> None:
    validator = jsonschema.Draft202012Validator(logging_config.schema())
    good = {
        "timestamp": "2025-01-01T00:00:00.123Z", "level": "INFO", "logger": "a", "message": "m",
        "service": "s", "environment": "e", "version": "v",
    }  # fmt: skip
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "timestamp": "2025-01-01T00:00:00Z"})
    assert not validator.is_valid({**good, "timestamp": "2025-01-01T00:00:00.123+00:00"})
    assert not validator.is_valid({**good, "level": "info"})
    assert not validator.is_valid({**good, "exception": {"type": "E", "message": "m"}})
    assert not validator.is_valid({**good, "request_id": 42})
    assert not validator.is_valid({k: v for k, v in good.items() if k != "service"})


def test_schema_file_ships_inside_the_package() -> None:
    from importlib import resources

    assert resources.files("logging_config").joinpath("schema.json").is_file()


def test_span_ids_come_from_the_span_source(output: Output) -> None:
    logging_config.bind(request_id="r", tenant="acme")
    logging_config.set_span_source(lambda: ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"))
    log.info("traced")
    logging_config.set_span_source(lambda: None)
    log.info("untraced")
    traced, untraced = output.records(bound_extra=("tenant",))
    assert list(traced)[4:8] == ["request_id", "trace_id", "span_id", "tenant"]
    assert traced["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert traced["span_id"] == "b7ad6b7169203331"
    assert "trace_id" not in untraced


def test_without_opentelemetry_there_are_no_span_ids(monkeypatch: pytest.MonkeyPatch, output: Output) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # makes the import fail
    _trace.set_span_source(None)
    log.info("no otel")
    [record] = output.records()
    assert "trace_id" not in record and "span_id" not in record


def test_active_opentelemetry_span_is_picked_up(output: Output) -> None:
    trace = pytest.importorskip("opentelemetry.trace")
    _trace.set_span_source(None)
    span_context = trace.SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=False,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    with trace.use_span(trace.NonRecordingSpan(span_context)):
        log.info("inside span")
    log.info("outside span")
    inside, outside = output.records()
    assert (inside["trace_id"], inside["span_id"]) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert "trace_id" not in outside
