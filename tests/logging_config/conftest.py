"""Fixtures: a configured logger writing to a buffer, and a reader that checks every line."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jsonschema
import pytest

import logging_config
from logging_config import _config, _trace

SCHEMA = logging_config.schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())

#: Where each field may appear, in the order the schema promises.
_HEAD = ("timestamp", "level", "logger", "message")
_CONTEXT = ("request_id", "user_id", "company_id", "task_id", "task_name", "trace_id", "span_id")
_STATIC = ("service", "environment", "version")


def check_record(record: dict[str, Any], bound_extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Assert ``record`` is valid against the shipped schema and in the promised field order.

    ``bound_extra`` names bound keys other than the known context fields (they sit after them).
    """
    VALIDATOR.validate(record)
    keys = list(record)
    assert keys[:4] == list(_HEAD), keys
    position = 4
    context = [key for key in keys[4:] if key in _CONTEXT]
    assert keys[position : position + len(context)] == context, keys
    assert context == sorted(context, key=_CONTEXT.index), keys
    position += len(context)
    assert keys[position : position + len(bound_extra)] == list(bound_extra), keys
    position += len(bound_extra)
    assert keys[position : position + 3] == list(_STATIC), keys
    if "exception" in record:
        assert keys[-1] == "exception", keys
    return record


def parse_lines(text: str, bound_extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every line is exactly one JSON object that passes :func:`check_record`."""
    assert text == "" or text.endswith("\n")
    records = []
    for line in text.splitlines():
        record = json.loads(line)
        assert isinstance(record, dict)
        records.append(check_record(record, bound_extra))
    return records


class Output:
    """The lines written since the fixture configured logging, parsed and checked."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def records(self, bound_extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        return parse_lines(self.text, bound_extra)

    def by_message(self, message: str) -> list[dict[str, Any]]:
        return [record for record in self.records() if record["message"] == message]


@contextmanager
def without_pytest_log_capture() -> Iterator[None]:
    """Detach pytest's capture handlers, which raise on records the formatter is meant to survive."""
    root = logging.getLogger()
    theirs = [handler for handler in root.handlers if type(handler).__module__.startswith("_pytest")]
    for handler in theirs:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in theirs:
            root.addHandler(handler)


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """Each test starts with an empty context and leaves the root logger as it found it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    logging_config.clear_context()
    yield
    logging_config.clear_context()
    _trace.set_span_source(None)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.fixture
def configure_output() -> Callable[..., Output]:
    """``configure_output(**configure_kwargs)`` sends the process's logs to a fresh buffer."""

    def _configure(**kwargs: Any) -> Output:
        stream = io.StringIO()
        options: dict[str, Any] = {
            "service": "ecvi-api",
            "environment": "test",
            "version": "1.2.3",
            "level": "DEBUG",
        }
        options.update(kwargs)
        _config.configure(stream=stream, **options)
        return Output(stream)

    return _configure


@pytest.fixture
def output(configure_output: Callable[..., Output]) -> Output:
    return configure_output()
