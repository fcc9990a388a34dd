"""Human-readable lines for a terminal, carrying the same fields as the JSON record."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from ._formatter import JsonFormatter

__all__ = ["ConsoleFormatter"]

_HEAD = ("timestamp", "level", "logger", "message", "exception")


class ConsoleFormatter(JsonFormatter):
    """``2025-01-01T00:00:00.123Z INFO  app.api  Company created  request_id=… company_id=…``

    Built from the JSON record, so redaction and field order are the same; a traceback follows
    on the next lines, as a developer expects to see it.
    """

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = orjson.loads(super().format(record))
        head = f"{data['timestamp']} {data['level']:<5} {data['logger']}  {data['message']}"
        fields = "  ".join(f"{key}={_render(value)}" for key, value in data.items() if key not in _HEAD)
        line = f"{head}  {fields}" if fields else head
        exception = data.get("exception")
        if exception:
            line = f"{line}\n{exception['stacktrace']}"
        return line


def _render(value: Any) -> str:
    if isinstance(value, str) and value and not any(ch.isspace() or ch in '"=' for ch in value):
        return value
    return orjson.dumps(value).decode()
