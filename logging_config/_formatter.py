"""The JSON formatter: one line per record, in the schema of ``schema.json``.

It is python-json-logger's orjson formatter with the field assembly replaced: the schema fixes
the field order and the layout of ``exception``, the bound context and redaction are added, and
encoding falls back step by step so that no value can stop a line from being written.
Subclasses can still use python-json-logger's hooks (``add_fields``, ``process_log_record``,
``jsonify_log_record``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from itertools import islice
from pathlib import PurePath
from typing import Any

import orjson
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from . import _context, _trace
from ._record import CONTEXT_ATTRIBUTE, install_record_factory
from ._redact import MAX_DEPTH, REDACTED, Redactor, key_to_str, safe_repr, safe_str

__all__ = ["JsonFormatter"]

#: LogRecord attributes that are not extra fields. ``color_message`` is uvicorn's ANSI copy of
#: the message; ``taskName`` arrived in Python 3.12.
#: ``ecvi_context`` is the bound context our record factory stores (see ``_record``).
_NOT_EXTRA = frozenset({*RESERVED_ATTRS, "message", "asctime", "taskName", "color_message", CONTEXT_ATTRIBUTE})
_STANDARD_ATTRIBUTES = len(logging.LogRecord("", logging.INFO, "", 0, "", (), None).__dict__)
_ID_FIELDS = frozenset(_context.CONTEXT_FIELDS)
_SCALAR_TYPES = frozenset({int, float, bool, type(None)})
_KEY_CACHE_SIZE = 4096
_PLAIN, _SECRET, _CONTEXT, _SKIP = "plain", "secret", "context", "skip"
_LEVEL_NAMES = {name: name for name in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")}


class JsonFormatter(OrjsonFormatter):
    """Formats records as ECVI JSON lines (see ``logging_config.schema()``).

    ``service``, ``environment`` and ``version`` go on every line; ``redact`` adds key names to
    the built-in list of secrets.
    """

    def __init__(
        self,
        service: str = "unknown",
        environment: str = "unknown",
        version: str = "unknown",
        redact: Iterable[str] = (),
    ) -> None:
        super().__init__(json_default=self._encode_other, reserved_attrs=sorted(_NOT_EXTRA))
        self.static_fields = {"service": service, "environment": environment, "version": version}
        for field, value in self.static_fields.items():
            if not isinstance(value, str) or not value:
                raise ValueError(f"{field} must be a non-empty string, not {value!r}")
        self.redact_keys: tuple[str, ...] = tuple(redact)
        self.redactor = Redactor(self.redact_keys)
        self._second: tuple[int, str] = (-1, "")
        self._key_kinds: dict[Any, tuple[str, str]] = {}
        self._messages: dict[str, str] = {}
        # (context mapping, its redacted copy): bound mappings are immutable and long-lived,
        # so most records reuse the copy.
        self._context_cache: tuple[Mapping[str, Any] | None, dict[str, Any]] = (None, {})
        self._custom_processing = type(self).process_log_record is not OrjsonFormatter.process_log_record
        install_record_factory()

    # -- python-json-logger hooks ------------------------------------------------------------

    def format(self, record: logging.LogRecord) -> str:
        """python-json-logger's ``format`` with its semantics and hooks, minus its generic steps.

        Dict messages become fields, ``exc_info``/``exc_text`` and ``stack_info`` reach
        ``add_fields`` through ``message_dict``, then ``add_fields``, ``process_log_record`` (when
        overridden) and ``jsonify_log_record`` run. The base method's extra per-record calls cost
        about a fifth of this formatter's time, measured with ``bench/logging_overhead.py``.
        The traceback text is cached on the record, as ``logging.Formatter`` does, so a second
        handler does not format it again.
        """
        try:
            message_dict: dict[str, Any]
            if isinstance(record.msg, dict):
                message_dict = dict(record.msg)
                record.message = ""
            else:
                message_dict = {}
                record.message = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = str(self.formatException(record.exc_info))
            if record.exc_text:
                message_dict.setdefault("exc_info", record.exc_text)
            if record.stack_info:
                message_dict.setdefault("stack_info", self.formatStack(record.stack_info))
            log_data: dict[str, Any] = {}
            self.add_fields(log_data, record, message_dict)
            if self._custom_processing:
                log_data = self.process_log_record(log_data)
            return self.jsonify_log_record(log_data)
        except Exception as error:  # a broken record (bad %-args, a raising __str__) still logs
            return self._format_broken(record, error)

    def add_fields(
        self,
        log_data: dict[str, Any],
        record: logging.LogRecord,
        message_dict: dict[str, Any],
    ) -> None:
        redactor = self.redactor
        stacktrace = message_dict.pop("exc_info", None) if message_dict else None
        stack_info = message_dict.pop("stack_info", None) if message_dict else None

        log_data["timestamp"] = self._timestamp(record.created)
        log_data["level"] = _LEVEL_NAMES.get(record.levelname) or str(record.levelname).upper()
        log_data["logger"] = record.name
        log_data["message"] = self._message(record)

        extras, overrides = self._extras(record, message_dict)
        log_data.update(self._bound_context(overrides, record))
        log_data.update(self.static_fields)
        if extras:
            log_data.update(extras)
        if stack_info:
            log_data["stack_info"] = redactor.redact_str(str(stack_info))
        if stacktrace is not None and record.exc_info != (None, None, None):
            log_data["exception"] = self._exception(record, str(stacktrace))

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        try:
            line = orjson.dumps(log_data, default=self._encode_other).decode()
        except TypeError:  # orjson.JSONEncodeError: odd keys, huge ints, surrogates, cycles
            line = orjson.dumps(_sanitize(log_data, 0, set()), default=self._encode_other).decode()
        if not line.isascii():
            line = _escape_line_breaks(line)
        return line

    # -- field assembly ----------------------------------------------------------------------

    def _timestamp(self, created: float) -> str:
        seconds = int(created)
        cached = self._second
        if cached[0] != seconds:
            cached = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
            self._second = cached
        return f"{cached[1]}.{int((created - seconds) * 1000):03d}Z"

    def _message(self, record: logging.LogRecord) -> str:
        message = record.message
        if record.args or message is not record.msg:
            return self.redactor.redact_str(message)
        # A constant message (no %-args) is the same str object every call: remember its
        # redacted form instead of scanning it again.
        cached = self._messages.get(message)
        if cached is None:
            cached = self.redactor.redact_str(message)
            if len(self._messages) < _KEY_CACHE_SIZE and len(message) <= 1024:
                self._messages[message] = cached
        return cached

    def _extras(
        self, record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Fields passed with ``extra=`` (or a dict message), redacted, in the order given.

        Context ids passed this way come back separately so they land in the context block.
        """
        attrs = record.__dict__
        tail = len(attrs) - _STANDARD_ATTRIBUTES
        if tail > 0 and next(iter(attrs)) == "name":
            # LogRecord.__init__ sets its attributes first (starting with "name"); extras are
            # added after, so only the tail of __dict__ needs looking at.
            names = [key for key in islice(reversed(attrs), tail) if key not in _NOT_EXTRA]
            names.reverse()
        else:
            names = [key for key in attrs if key not in _NOT_EXTRA] if tail > 0 else []
        if not names and not message_dict:
            return {}, None
        extras: dict[str, Any] = {}
        overrides: dict[str, Any] | None = None
        if message_dict:
            overrides = self._add_extras(extras, message_dict.items(), overrides)
        if names:
            overrides = self._add_extras(extras, zip(names, map(attrs.__getitem__, names), strict=True), overrides)
        return extras, overrides

    def _add_extras(
        self,
        extras: dict[str, Any],
        pairs: Iterable[tuple[Any, Any]],
        overrides: dict[str, Any] | None,
    ) -> dict[str, Any] | None:
        redact_str = self.redactor.redact_str
        redact = self.redactor.redact
        kinds = self._key_kinds
        for key, value in pairs:
            kind, name = kinds.get(key) or self._classify_key(key)
            if kind is _PLAIN:
                value_type = type(value)
                if value_type is str:
                    value = redact_str(value)
                elif value_type not in _SCALAR_TYPES:
                    value = redact(value, 1)
                extras[name] = value
            elif kind is _SECRET:
                extras[name] = REDACTED
            elif kind is _CONTEXT:
                if overrides is None:
                    overrides = {}
                overrides[name] = value
        return overrides

    def _classify_key(self, key: Any) -> tuple[str, str]:
        """How an extra key is written; cached, since a program uses few distinct keys."""
        name = key if isinstance(key, str) else key_to_str(key)
        if name in _ID_FIELDS:
            kind = _CONTEXT
        elif name.startswith("_"):  # python-json-logger's convention for private attributes
            kind = _SKIP
        else:
            if name in _context.RESERVED_FIELDS:
                name = "extra_" + name
            kind = _SECRET if self.redactor.is_secret_key(name) else _PLAIN
        if len(self._key_kinds) < _KEY_CACHE_SIZE:
            self._key_kinds[key] = (kind, name)
        return kind, name

    def _bound_context(self, overrides: dict[str, Any] | None, record: logging.LogRecord) -> Mapping[str, Any]:
        # The context the record was made in (our record factory), else the current one.
        bound = record.__dict__.get(CONTEXT_ATTRIBUTE)
        if bound is None:
            bound = _context.snapshot()
        span = _trace.current_span_ids()
        if span is not None:
            bound = _context.canonical({**bound, "trace_id": span[0], "span_id": span[1]})
        if overrides:
            bound = _context.merged(bound, overrides)
        cached_source, cached = self._context_cache
        if cached_source is bound:
            return cached
        if not bound:
            return bound
        redacted = self.redactor.redact_mapping(dict(bound))
        self._context_cache = (bound, redacted)
        return redacted

    def _exception(self, record: logging.LogRecord, stacktrace: str) -> dict[str, str]:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            kind = type(error)
            type_name = kind.__qualname__
            if kind.__module__ not in ("builtins", "__main__"):
                type_name = f"{kind.__module__}.{type_name}"
            message = safe_str(error)
        else:  # only the text survived (a record rebuilt from another process)
            type_name, _, message = stacktrace.rstrip().rpartition("\n")[2].partition(": ")
        redact = self.redactor.redact_str
        return {"type": type_name, "message": redact(message), "stacktrace": redact(stacktrace)}

    # -- fallbacks ---------------------------------------------------------------------------

    def _encode_other(self, value: Any) -> Any:
        """orjson's ``default``: readable text for what JSON has no type for, never an error."""
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self.redactor.redact_str(bytes(value).decode("utf-8", "backslashreplace"))
        if isinstance(value, (set, frozenset)):
            return self.redactor.redact(value, MAX_DEPTH - 1)
        if isinstance(value, (Decimal, PurePath)):
            return str(value)
        if isinstance(value, BaseException):
            return self.redactor.redact_str(f"{type(value).__name__}: {safe_str(value)}")
        return self.redactor.redact_str(safe_repr(value))

    def _format_broken(self, record: logging.LogRecord, error: Exception) -> str:
        """The line for a record that cannot be formatted: its raw parts, as text."""
        redact = self.redactor.redact_str
        data: dict[str, Any] = {
            "timestamp": self._timestamp(record.created),
            "level": safe_str(record.levelname).upper(),
            "logger": safe_str(record.name),
            "message": redact(safe_str(record.msg)),
        }
        with contextlib.suppress(Exception):
            data.update(self._bound_context(None, record))
        data.update(self.static_fields)
        data["args"] = redact(safe_repr(record.args))
        data["logging_error"] = redact(safe_repr(error))
        return orjson.dumps(_sanitize(data, 0, set())).decode()


#: Line breaks JSON allows raw in strings but some readers (Python's splitlines, older
#: JavaScript) split on; escaped, a record stays one line for every reader.
_UNICODE_LINE_BREAKS = {"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _escape_line_breaks(line: str) -> str:
    for char, escaped in _UNICODE_LINE_BREAKS.items():
        if char in line:
            line = line.replace(char, escaped)
    return line


def _sanitize(value: Any, depth: int, seen: set[int]) -> Any:
    """Reshape ``value`` into what orjson accepts; only runs after a failed first attempt."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value if -(2**63) <= value < 2**64 else str(value)
    if not isinstance(value, (dict, list, tuple)):
        return value
    if depth >= MAX_DEPTH:
        return "[TOO DEEP]"
    if id(value) in seen:
        return "[CIRCULAR]"
    seen.add(id(value))
    try:
        if isinstance(value, dict):
            return {
                _sanitize(key if isinstance(key, str) else key_to_str(key), depth, seen): _sanitize(
                    item, depth + 1, seen
                )
                for key, item in value.items()
            }
        return [_sanitize(item, depth + 1, seen) for item in value]
    finally:
        seen.discard(id(value))
