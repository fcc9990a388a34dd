"""Helpers for the application's own tests: see what it logged, as the records it would write.

Example::

    from logging_config.testing import capture_logs

    def test_signup_is_logged(client):
        with capture_logs() as logs:
            client.post("/companies", json={...})
        assert {"message": "Company created", "level": "INFO"}.items() <= logs[-1].items()
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from ._formatter import JsonFormatter

__all__ = ["capture_logs"]


class _CaptureHandler(logging.Handler):
    def __init__(self, records: list[dict[str, Any]], formatter: JsonFormatter) -> None:
        super().__init__()
        self.records = records
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(orjson.loads(self.format(record)))


def _active_formatter() -> JsonFormatter:
    """A formatter with the settings of the one configured on the root logger, if any."""
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        if isinstance(formatter, JsonFormatter):
            return JsonFormatter(**formatter.static_fields, redact=formatter.redact_keys)
    return JsonFormatter()


@contextmanager
def capture_logs(level: int | str | None = None, logger: str | None = None) -> Iterator[list[dict[str, Any]]]:
    """Collect the records logged inside the block as dicts, exactly as they would be written.

    Records are captured on ``logger`` (the root logger by default), so they must propagate to
    it. ``level`` lowers or raises that logger's level for the duration of the block; left as
    None, the block sees what the application would write anyway.
    """
    records: list[dict[str, Any]] = []
    target = logging.getLogger(logger)
    handler = _CaptureHandler(records, _active_formatter())
    previous_level = target.level
    target.addHandler(handler)
    if level is not None:
        target.setLevel(level)
    try:
        yield records
    finally:
        target.removeHandler(handler)
        if level is not None:
            target.setLevel(previous_level)
