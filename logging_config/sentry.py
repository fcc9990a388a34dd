"""Sentry with the log context: the same ids, the same redaction, and links both ways.

:func:`logging_config.configure` calls :func:`init_sentry` when a DSN is given (or ``SENTRY_DSN``
is set). It initialises ``sentry_sdk`` with the release (the app's version), the environment,
a 10 % transaction sample rate by default, and the integrations the SDK enables on its own when
FastAPI/Starlette or Celery are installed. Then, with no call by the application:

* every event and transaction sent from a request or task carries the bound context as tags
  (``request_id``, ``company_id``, ``task_id``, ...) and ``user.id`` — also events the
  application sends itself with ``sentry_sdk.capture_exception()``;
* events and breadcrumbs go through the log redaction rules, so no secret a log line would hide
  reaches Sentry;
* a log record at ``event_level`` (ERROR) or above becomes a Sentry event, and its JSON line
  carries ``sentry_event_id``; a line logged for an exception Sentry already has (a task failure
  Celery logs after the Celery integration reported it) carries that event's id instead of
  making a second event.

Breadcrumbs come from Sentry's own logging integration (INFO and above by default); events from
log records are made here, by Sentry's ``EventHandler``, so the id is known before the line is
written (Sentry's integration would only run after every handler).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from . import _context
from ._record import record_context
from ._redact import Redactor

__all__ = [
    "DEFAULT_TRACES_SAMPLE_RATE",
    "SentryFilter",
    "capture_exception",
    "close_sentry",
    "init_sentry",
    "is_active",
    "tag_transaction",
]

DEFAULT_TRACES_SAMPLE_RATE = 0.1
#: Context ids sent as Sentry tags (searchable in Sentry's UI); ``user_id`` goes to ``user.id``.
TAG_FIELDS = ("request_id", "company_id", "task_id", "task_name", "trace_id")
_EVENT_ID_ATTR = "__ecvi_sentry_event_id__"
_CONTEXT_ATTR = "__ecvi_context__"
_SKIP_ATTR = "_ecvi_sentry_skip"

log = logging.getLogger("logging_config.sentry")

_state: dict[str, Any] = {"active": False, "redactor": None, "event_level": logging.ERROR}

Hook = Callable[[dict[str, Any], dict[str, Any]], "dict[str, Any] | None"]


def is_active() -> bool:
    """True once :func:`init_sentry` set up the SDK in this process."""
    return bool(_state["active"])


def init_sentry(
    dsn: str | None = None,
    *,
    release: str | None = None,
    environment: str | None = None,
    redactor: Redactor | None = None,
    traces_sample_rate: float = DEFAULT_TRACES_SAMPLE_RATE,
    event_level: int = logging.ERROR,
    breadcrumb_level: int = logging.INFO,
    options: Mapping[str, Any] | None = None,
) -> bool:
    """Initialise ``sentry_sdk``; False (and one warning) when it cannot be, never an exception.

    ``dsn`` defaults to ``SENTRY_DSN``; with neither, Sentry is left untouched. ``options`` go
    to ``sentry_sdk.init`` as they are (``before_send`` given there runs after ours).
    """
    dsn = dsn if dsn is not None else os.environ.get("SENTRY_DSN", "")
    if not dsn:
        return False
    if not 0.0 <= traces_sample_rate <= 1.0:
        raise ValueError(f"traces_sample_rate must be within 0..1, not {traces_sample_rate!r}")
    try:
        import sentry_sdk
        from sentry_sdk.integrations.logging import LoggingIntegration
    except ImportError:
        log.warning("sentry_dsn is set but sentry-sdk is not installed (pip install 'ecvi-logging[sentry]')")
        return False
    extra = dict(options or {})
    user_before_send: Hook | None = extra.pop("before_send", None)
    user_before_transaction: Hook | None = extra.pop("before_send_transaction", None)
    user_before_breadcrumb: Hook | None = extra.pop("before_breadcrumb", None)
    integrations = list(extra.pop("integrations", []))
    # Breadcrumbs from Sentry's integration; events from log records are made by SentryFilter.
    integrations.append(LoggingIntegration(level=breadcrumb_level, event_level=None))
    _state["redactor"] = redactor or Redactor()
    _state["event_level"] = event_level
    hooks: dict[str, Any] = {  # typed loosely: the SDK's Event is a TypedDict of the same dicts
        "before_send": _chain(_before_send, user_before_send),
        "before_send_transaction": _chain(_before_send_transaction, user_before_transaction),
        "before_breadcrumb": _chain(_before_breadcrumb, user_before_breadcrumb),
    }
    try:
        sentry_sdk.init(
            dsn=dsn,
            release=release,
            environment=environment,
            traces_sample_rate=traces_sample_rate,
            integrations=integrations,
            **hooks,
            **extra,
        )
    except Exception as error:  # a malformed DSN from the environment must not stop the app
        log.warning("Sentry not enabled: %s: %s", type(error).__name__, error)
        return False
    _state["active"] = True
    return True


def close_sentry(timeout: float = 2.0) -> None:
    """Send what is queued (waiting at most ``timeout`` seconds) and turn Sentry off."""
    if not _state["active"]:
        return
    _state["active"] = False
    import sentry_sdk

    sentry_sdk.get_client().close(timeout=timeout)


def capture_exception(error: BaseException) -> str | None:
    """Report ``error`` now, in the current context; its event id (None when Sentry is off).

    Used where the context is about to end before the framework reports the error (the ASGI
    middleware). Sentry's deduplication drops the second report of the same exception object.
    """
    if not _state["active"]:
        return None
    known = getattr(error, _EVENT_ID_ATTR, None)
    if known:
        return str(known)
    with contextlib.suppress(AttributeError, TypeError):
        setattr(error, _CONTEXT_ATTR, _context.snapshot())
    try:
        import sentry_sdk

        return sentry_sdk.capture_exception(error)
    except Exception:  # reporting must never break the request
        return None


def tag_transaction() -> None:
    """Put the bound context on the running transaction (the request's or the task's).

    Transactions finish after the request's context ended, so the tags are set while it is
    still bound. Only the transaction is tagged, never a scope shared by other requests.
    """
    if not _state["active"]:
        return
    bound = _context.snapshot()
    if not bound:
        return
    try:
        import sentry_sdk

        span = sentry_sdk.get_current_span()
        transaction = span.containing_transaction if span is not None else None
        if transaction is None:
            return
        for key in TAG_FIELDS:
            if key in bound:
                transaction.set_tag(key, str(bound[key]))
        if "user_id" in bound:
            transaction.set_tag("user_id", str(bound["user_id"]))
    except Exception:  # tagging must never break the request
        pass


class SentryFilter(logging.Filter):
    """On our handlers: a record at the event level becomes a Sentry event, its id on the line.

    It never drops a record. A record marked ``_ecvi_sentry_skip`` (the access line of a failed
    request, reported with its exception instead) is left alone.
    """

    def __init__(self) -> None:
        super().__init__()
        self._handler: logging.Handler | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if not _state["active"] or record.levelno < _state["event_level"]:
            return True
        attrs = record.__dict__
        if "sentry_event_id" in attrs or attrs.get(_SKIP_ATTR) or record.name.startswith("sentry_sdk"):
            return True
        error = record.exc_info[1] if record.exc_info else None
        known = getattr(error, _EVENT_ID_ATTR, None) if error is not None else None
        if known:
            record.sentry_event_id = str(known)
            return True
        with contextlib.suppress(Exception):  # reporting must never cost the log line
            self._event_handler().handle(record)
        return True

    def _event_handler(self) -> logging.Handler:
        if self._handler is None:
            from sentry_sdk.integrations.logging import EventHandler

            self._handler = EventHandler(level=logging.NOTSET)
        return self._handler


# -- hooks ---------------------------------------------------------------------------------------


def _chain(ours: Hook, theirs: Hook | None) -> Hook:
    if theirs is None:
        return ours

    def both(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        out = ours(event, hint)
        return None if out is None else theirs(out, hint)

    return both


def _event_context(hint: Mapping[str, Any]) -> Mapping[str, Any]:
    """The log context of an event: its log record's, its exception's, else the current one."""
    record = hint.get("log_record")
    if isinstance(record, logging.LogRecord):
        return record_context(record)
    exc_info = hint.get("exc_info")
    error = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) == 3 else None
    carried = getattr(error, _CONTEXT_ATTR, None)
    if isinstance(carried, Mapping):
        return carried
    return _context.snapshot()


def _with_context(event: dict[str, Any], hint: Mapping[str, Any]) -> dict[str, Any]:
    bound = _event_context(hint)
    if bound:
        tags = event.get("tags")
        tags = dict(tags) if isinstance(tags, Mapping) else {}
        for key in TAG_FIELDS:
            if key in bound and key not in tags:
                tags[key] = str(bound[key])
        event["tags"] = tags
        if "user_id" in bound:
            user = event.get("user")
            user = dict(user) if isinstance(user, Mapping) else {}
            user.setdefault("id", str(bound["user_id"]))
            event["user"] = user
        contexts = event.get("contexts")
        contexts = dict(contexts) if isinstance(contexts, Mapping) else {}
        contexts["log_context"] = {key: str(value) for key, value in bound.items()}
        event["contexts"] = contexts
    redactor: Redactor = _state["redactor"] or Redactor()
    redacted: dict[str, Any] = redactor.redact_mapping(event)
    return redacted


def _before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    out = _with_context(event, hint)
    event_id = out.get("event_id")
    if event_id:
        record = hint.get("log_record")
        if isinstance(record, logging.LogRecord):
            record.sentry_event_id = event_id
        exc_info = hint.get("exc_info")
        if isinstance(exc_info, tuple) and len(exc_info) == 3 and exc_info[1] is not None:
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exc_info[1], _EVENT_ID_ATTR, event_id)
    return out


def _before_send_transaction(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    return _with_context(event, hint)


def _before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    redactor: Redactor = _state["redactor"] or Redactor()
    redacted: dict[str, Any] = redactor.redact_mapping(crumb)
    return redacted
