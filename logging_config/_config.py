"""``configure()`` for apps that let us set up logging, ``dict_config()`` for those that do it.

Both describe the same setup: the root logger writes ECVI JSON lines to stdout (optionally also
to a Fluent forward input), and the framework loggers that install handlers of their own
(uvicorn, gunicorn, celery) hand their records to the root logger instead.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from typing import IO, Any, Literal

from ._console import ConsoleFormatter
from ._formatter import JsonFormatter
from ._redact import Redactor

__all__ = ["FRAMEWORK_LOGGERS", "configure", "dict_config", "is_configured"]

Format = Literal["json", "console", "auto"]

#: Loggers that frameworks give their own handlers (and often ``propagate=False``).
FRAMEWORK_LOGGERS: tuple[str, ...] = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "gunicorn",
    "gunicorn.error",
    "gunicorn.access",
    "celery",
    "celery.task",
    "celery.redirected",
)

_OWNED = "_ecvi_logging"  # attribute marking the handlers configure() installed


def _level(level: int | str) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r}")
    return value


def _use_console(fmt: Format, stream: IO[str] | None) -> bool:
    if fmt not in ("json", "console", "auto"):
        raise ValueError(f"fmt must be 'json', 'console' or 'auto', not {fmt!r}")
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        return bool(isatty and isatty())
    return fmt == "console"


def is_configured() -> bool:
    """True when the root logger already writes ECVI records (via configure() or dict_config())."""
    return any(
        getattr(handler, _OWNED, False) or isinstance(handler.formatter, JsonFormatter)
        for handler in logging.getLogger().handlers
    )


def configure(
    *,
    service: str,
    environment: str = "development",
    version: str = "unknown",
    level: int | str = "INFO",
    fmt: Format = "json",
    redact: Iterable[str] = (),
    fluent: Mapping[str, Any] | None = None,
    stream: IO[str] | None = None,
    uvicorn_access: bool = True,
    sentry_dsn: str | None = None,
    traces_sample_rate: float = 0.1,
    sentry_options: Mapping[str, Any] | None = None,
) -> None:
    """Send every log record of the process, as one ECVI JSON line, to ``stream`` (stdout).

    ``fmt="auto"`` picks the console format when the stream is a terminal. ``redact`` adds key
    names to the secrets list. ``fluent={"host": ..., "port": ...}`` (and optionally ``tag``,
    ``queue_maxsize``, ``timeout``) also ships records to a Fluent forward input. Set
    ``uvicorn_access=False`` when :class:`~logging_config.asgi.RequestContextMiddleware` writes
    the access lines, so each request is not logged twice.

    ``sentry_dsn`` (default: the ``SENTRY_DSN`` environment variable; ``""`` or neither leaves
    Sentry untouched) enables Sentry with ``release=version``, ``environment``, a
    ``traces_sample_rate`` of 10 % and the bound context on every event; ``sentry_options`` go
    to ``sentry_sdk.init``. See :mod:`logging_config.sentry`.

    Calling it again replaces what the previous call installed.
    """
    stream = sys.stdout if stream is None else stream
    root_level = _level(level)  # validate everything before touching the current setup
    console = _use_console(fmt, stream)
    fields: dict[str, Any] = {
        "service": service,
        "environment": environment,
        "version": version,
        "redact": tuple(redact),
    }
    stream_handler = logging.StreamHandler(stream)
    stream_handler.setFormatter(ConsoleFormatter(**fields) if console else JsonFormatter(**fields))
    handlers: list[logging.Handler] = [stream_handler]
    if fluent is not None:
        from .fluent import handler_from_options

        fluent_handler = handler_from_options(dict(fluent), service)
        fluent_handler.setFormatter(JsonFormatter(**fields))
        handlers.append(fluent_handler)

    root = logging.getLogger()
    for old in [handler for handler in root.handlers if getattr(handler, _OWNED, False)]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        setattr(handler, _OWNED, True)
        root.addHandler(handler)
    root.setLevel(root_level)

    for name in FRAMEWORK_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    if not uvicorn_access:
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)

    # After the handlers, so a warning about the DSN is written as a line like any other.
    from .sentry import SentryFilter, init_sentry

    if init_sentry(
        sentry_dsn,
        release=version,
        environment=environment,
        redactor=Redactor(fields["redact"]),
        traces_sample_rate=traces_sample_rate,
        options=sentry_options,
    ):
        sentry_filter = SentryFilter()  # one instance: a record becomes at most one event
        for handler in handlers:
            handler.addFilter(sentry_filter)


def dict_config(
    *,
    service: str,
    environment: str = "development",
    version: str = "unknown",
    level: int | str = "INFO",
    fmt: Format = "json",
    redact: Iterable[str] = (),
    fluent: Mapping[str, Any] | None = None,
    stream: str = "ext://sys.stdout",
    uvicorn_access: bool = True,
) -> dict[str, Any]:
    """The same setup as :func:`configure`, as a :func:`logging.config.dictConfig` dict.

    For servers that apply a logging config themselves, e.g.
    ``uvicorn.run(app, log_config=dict_config(service="api"))`` or gunicorn's
    ``logconfig_dict``. Extend the dict freely before passing it on.
    """
    fields: dict[str, Any] = {
        "service": service,
        "environment": environment,
        "version": version,
        "redact": list(redact),
    }
    # "auto" is decided now, against the stream the handler will get.
    target = {"ext://sys.stdout": sys.stdout, "ext://sys.stderr": sys.stderr}.get(stream)
    console = _use_console(fmt, target)
    formatters: dict[str, Any] = {
        "ecvi_json": {"()": f"{JsonFormatter.__module__}.JsonFormatter", **fields},
    }
    if console:
        formatters["ecvi_console"] = {"()": f"{ConsoleFormatter.__module__}.ConsoleFormatter", **fields}
    handlers: dict[str, Any] = {
        "ecvi_stream": {
            "class": "logging.StreamHandler",
            "stream": stream,
            "formatter": "ecvi_console" if console else "ecvi_json",
            "filters": ["ecvi_sentry"],
        }
    }
    if fluent is not None:
        options = dict(fluent)
        options.setdefault("tag", f"ecvi.{service}")
        handlers["ecvi_fluent"] = {
            "()": "logging_config.fluent.FluentForwardHandler",
            "formatter": "ecvi_json",
            "filters": ["ecvi_sentry"],
            **options,
        }
    loggers: dict[str, Any] = {
        name: {"handlers": [], "propagate": True, "level": "NOTSET"} for name in FRAMEWORK_LOGGERS
    }
    if not uvicorn_access:
        loggers["uvicorn.access"]["level"] = "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": formatters,
        # A no-op until Sentry is initialised (logging_config.sentry.init_sentry).
        "filters": {"ecvi_sentry": {"()": "logging_config.sentry.SentryFilter"}},
        "handlers": handlers,
        "root": {"level": logging.getLevelName(_level(level)), "handlers": list(handlers)},
        "loggers": loggers,
    }
