"""Structured JSON logging for the ECVI backend (FastAPI + Celery).

Example::

    import logging_config
    logging_config.configure(service="api", environment="production", version="1.4.2")
    logging_config.bind(request_id="...")
    logging.getLogger("app.api").info("Company created", extra={"plan": "pro"})

Every record becomes one JSON line in the schema returned by :func:`schema`. See
:mod:`logging_config.asgi` (request ids, access lines), :mod:`logging_config.celery` (context
in tasks), :mod:`logging_config.fluent` (direct shipping) and :mod:`logging_config.testing`.
"""

from __future__ import annotations

from ._config import configure, dict_config
from ._console import ConsoleFormatter
from ._context import bind, bind_user, clear_context, context, get_context, unbind
from ._formatter import JsonFormatter
from ._redact import REDACTED, Redactor
from ._schema import schema
from ._trace import set_span_source

__all__ = [
    "REDACTED",
    "ConsoleFormatter",
    "JsonFormatter",
    "Redactor",
    "bind",
    "bind_user",
    "clear_context",
    "configure",
    "context",
    "dict_config",
    "get_context",
    "schema",
    "set_span_source",
    "unbind",
]
