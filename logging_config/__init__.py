"""Structured JSON logging for the ECVI backend (FastAPI + Celery).

Example::

    import logging_config
    logging_config.configure(service="api", environment="production", version="1.4.2")
    logging_config.bind(request_id="...")
    logging.getLogger("app.api").info("Company created", extra={"plan": "pro"})
    logging_config.get_logger("app.api").info("Company created", plan="pro")  # the same line

Every record becomes one JSON line in the schema returned by :func:`schema`. See
:mod:`logging_config.asgi` (request ids, access lines), :mod:`logging_config.celery` (context
in tasks), :mod:`logging_config.sentry` (errors with the same context),
:mod:`logging_config.metrics` (the Prometheus metrics behind the backend alerts),
:mod:`logging_config.fluent` (direct shipping) and :mod:`logging_config.testing`. These
submodules load on first use (``logging_config.celery.install()`` works after
``import logging_config``), so their optional dependencies are needed only by those who use them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ._config import configure, dict_config
from ._console import ConsoleFormatter
from ._context import bind, bind_user, clear_context, context, get_context, unbind
from ._formatter import JsonFormatter
from ._logger import KeywordLogger, get_logger
from ._record import ContextFilter
from ._redact import DEFAULT_SECRET_KEYS, DEFAULT_SECRET_WORDS, REDACTED, Redactor
from ._redact import MAX_DEPTH as REDACT_MAX_DEPTH
from ._schema import schema
from ._trace import set_span_source

__all__ = [
    "DEFAULT_SECRET_KEYS",
    "DEFAULT_SECRET_WORDS",
    "REDACTED",
    "REDACT_MAX_DEPTH",
    "ConsoleFormatter",
    "ContextFilter",
    "JsonFormatter",
    "KeywordLogger",
    "Redactor",
    "bind",
    "bind_user",
    "clear_context",
    "configure",
    "context",
    "dict_config",
    "get_context",
    "get_logger",
    "schema",
    "set_span_source",
    "unbind",
]

_SUBMODULES = frozenset({"asgi", "celery", "fluent", "metrics", "sentry", "testing"})


def __getattr__(name: str) -> ModuleType:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
