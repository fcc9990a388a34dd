"""Carry the log context from the code that enqueues a Celery task into the task itself.

On publish the bound context goes into the message headers; in the worker it is bound before
the task runs, together with ``task_id`` and ``task_name``, and dropped after. Call
:func:`install` where the Celery app is defined, so both the web process and the worker run it.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from . import _context, sentry

__all__ = ["HEADER", "install", "uninstall"]

#: Message header that carries the context.
HEADER = "ecvi_log_context"

_TASK_FIELDS = ("task_id", "task_name")
_JSON_SCALARS = (str, int, float, bool, type(None))
_tokens: dict[str, Any] = {}  # task id -> tokens from _context.replace


def install(*, worker_logging: bool = True) -> None:
    """Connect the signal handlers (again calling it is harmless).

    With ``worker_logging`` the worker leaves logging to :func:`logging_config.configure`
    instead of installing its own handlers; if nothing was configured by then, it configures
    JSON logging with ``service="celery"`` at the worker's log level.
    """
    signals.before_task_publish.connect(_on_publish, weak=False, dispatch_uid=_on_publish.__name__)
    signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid=_on_prerun.__name__)
    signals.task_postrun.connect(_on_postrun, weak=False, dispatch_uid=_on_postrun.__name__)
    signals.task_failure.connect(_on_failure, weak=False, dispatch_uid=_on_failure.__name__)
    if worker_logging:
        signals.setup_logging.connect(_on_setup_logging, weak=False, dispatch_uid=_on_setup_logging.__name__)


def uninstall() -> None:
    """Disconnect what :func:`install` connected."""
    signals.before_task_publish.disconnect(dispatch_uid=_on_publish.__name__)
    signals.task_prerun.disconnect(dispatch_uid=_on_prerun.__name__)
    signals.task_postrun.disconnect(dispatch_uid=_on_postrun.__name__)
    signals.task_failure.disconnect(dispatch_uid=_on_failure.__name__)
    signals.setup_logging.disconnect(dispatch_uid=_on_setup_logging.__name__)


def _on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None:
        return
    carried = _context.get_context()
    parent = carried.pop("task_id", None)
    carried.pop("task_name", None)
    if parent is not None:
        carried["parent_task_id"] = parent
    if carried:
        # The broker serializer must never fail because of a bound value.
        headers[HEADER] = {
            key: value if isinstance(value, _JSON_SCALARS) else str(value) for key, value in carried.items()
        }


def _on_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is None or task is None:
        return
    request = task.request
    # Eager tasks run inline in the caller's context, with no message to carry it.
    carried = _context.get_context() if request.is_eager else request.get(HEADER)
    values = {
        key: value
        for key, value in (carried if isinstance(carried, dict) else {}).items()
        if isinstance(key, str) and key not in _context.RESERVED_FIELDS and key not in _TASK_FIELDS
    }
    values["task_id"] = task_id
    values["task_name"] = task.name
    _tokens[task_id] = _context.replace(values)


def _on_failure(exception: BaseException | None = None, **_: Any) -> None:
    # With the task's context still bound. Sentry's Celery integration usually reported the
    # error already (then this only looks its id up); it misses tasks whose tracer was built
    # before sentry_sdk.init (a worker imported before the app configured logging).
    if exception is not None:
        sentry.capture_exception(exception)


def _on_postrun(task_id: str | None = None, **_: Any) -> None:
    sentry.tag_transaction()
    token = _tokens.pop(task_id, None) if task_id is not None else None
    if token is not None:
        _context.restore(token)


def _on_setup_logging(loglevel: int | str | None = None, **_: Any) -> None:
    from ._config import is_configured

    if not is_configured():
        from ._config import configure

        configure(service="celery", level=loglevel or logging.INFO)
