"""The bound context on every :class:`logging.LogRecord`, for handlers other than ours.

A record factory (installed once, wrapping whatever factory was there) stores the context in
force when the record is made as ``record.ecvi_context``. Sentry's logging integration, a
``QueueHandler`` that formats in another thread, or a third-party handler then see the same
context the JSON line carries; our formatter reads it from there too, so a record formatted
later or elsewhere keeps the context of the moment it was logged.

The ids are not set as attributes of their own by the factory: ``logging`` refuses an
``extra=`` key that already is an attribute, and ``extra={"request_id": ...}`` must keep
working. :class:`ContextFilter` sets them (``record.request_id``, ...) at handling time for a
handler that wants flat attributes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from . import _context

__all__ = ["CONTEXT_ATTRIBUTE", "ContextFilter", "install_record_factory"]

#: The record attribute holding the whole bound context (a read-only mapping).
CONTEXT_ATTRIBUTE = "ecvi_context"
_MARK = "_ecvi_record_factory"
_ID_FIELDS = _context.CONTEXT_FIELDS


def install_record_factory() -> None:
    """Wrap the current record factory so records carry the bound context (idempotent)."""
    previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()
    if getattr(previous, _MARK, False):
        return
    snapshot = _context.snapshot

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.ecvi_context = snapshot()
        return record

    setattr(factory, _MARK, True)
    logging.setLogRecordFactory(factory)


def record_context(record: logging.LogRecord) -> Any:
    """The context a record was made in (the current one for a record made without the factory)."""
    bound = record.__dict__.get(CONTEXT_ATTRIBUTE)
    return _context.snapshot() if bound is None else bound


class ContextFilter(logging.Filter):
    """Sets ``request_id``, ``user_id``, ``company_id``, ... as record attributes (never drops).

    For handlers that read flat attributes, e.g. ``handler.addFilter(ContextFilter())`` with a
    format string such as ``"%(request_id)s %(message)s"``; ids not bound become ``None``.
    A value passed with ``extra=`` wins.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        bound = record_context(record)
        attrs = record.__dict__
        for key in _ID_FIELDS:
            if key not in attrs:
                attrs[key] = bound.get(key)
        return True
