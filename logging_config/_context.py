"""Bound log context, kept in :mod:`contextvars` so threads and asyncio tasks never share it.

The bound mapping is treated as immutable: every change stores a new dict, which lets a child
task or thread change its own view without touching its parent's, and lets the formatter cache
work per mapping object.

A request scope sits beside it: a mutable dict shared by everything that runs for one request.
:func:`bind_user` writes there too, because FastAPI runs sync dependencies in worker threads on a
*copy* of the context, and the user they authenticate must still reach the access line and any
task the request enqueues.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

__all__ = [
    "CONTEXT_FIELDS",
    "bind",
    "bind_user",
    "clear_context",
    "context",
    "get_context",
    "unbind",
]

#: Context fields the schema knows, in the order they are written.
CONTEXT_FIELDS: tuple[str, ...] = (
    "request_id",
    "user_id",
    "company_id",
    "task_id",
    "task_name",
    "trace_id",
    "span_id",
)
_ID_FIELDS = frozenset(CONTEXT_FIELDS)

#: Fields owned by the record itself; binding them would make two sources for one field.
RESERVED_FIELDS = frozenset(
    {"timestamp", "level", "logger", "message", "service", "environment", "version", "exception"}
)

_EMPTY: dict[str, Any] = {}
_bound: ContextVar[dict[str, Any]] = ContextVar("ecvi_log_context", default=_EMPTY)
_request: ContextVar[dict[str, Any] | None] = ContextVar("ecvi_log_request", default=None)


def canonical(values: Mapping[str, Any]) -> dict[str, Any]:
    """Known context fields first, in schema order, then the rest in binding order."""
    ordered = {key: values[key] for key in CONTEXT_FIELDS if key in values}
    for key, value in values.items():
        if key not in ordered:
            ordered[key] = value
    return ordered


def merged(base: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in new.items():
        if key in RESERVED_FIELDS:
            raise ValueError(f"{key!r} is a record field set by configure(), it cannot be bound")
        if key in _ID_FIELDS:
            # Ids are strings in every line, so an int here and a str there never splits an
            # index mapping in the backends; None means "not known", i.e. not bound.
            if value is None:
                merged.pop(key, None)
                continue
            value = str(value)
        merged[key] = value
    return canonical(merged)


def bind(**values: Any) -> None:
    """Add ``values`` to the context of every following log line in this task or thread."""
    _bound.set(merged(_bound.get(), values))


def unbind(*keys: str) -> None:
    """Remove ``keys`` from the bound context (missing keys are ignored)."""
    current = _bound.get()
    if any(key in current for key in keys):
        _bound.set({key: value for key, value in current.items() if key not in keys})
    scope = _request.get()
    if scope:
        for key in keys:
            scope.pop(key, None)


@contextmanager
def context(**values: Any) -> Iterator[None]:
    """Bind ``values`` for the duration of a ``with`` block, then restore the previous context."""
    token = _bound.set(merged(_bound.get(), values))
    try:
        yield
    finally:
        _bound.reset(token)


def get_context() -> dict[str, Any]:
    """A copy of what the next log line would carry as context."""
    return dict(snapshot())


def clear_context() -> None:
    """Forget everything bound in this task or thread, including the request scope."""
    _bound.set(_EMPTY)
    _request.set(None)


def bind_user(user_id: Any = None, company_id: Any = None) -> None:
    """Bind the authenticated user and company for the rest of the request.

    Call it once from the app's auth dependency. Unlike :func:`bind`, the values also reach the
    request's access line and tasks it enqueues when the call happens in a worker thread.
    """
    values = {"user_id": user_id, "company_id": company_id}
    values = {key: value for key, value in values.items() if value is not None}
    if not values:
        return
    bind(**values)
    scope = _request.get()
    if scope is not None:
        scope.update(merged(_EMPTY, values))


def snapshot() -> Mapping[str, Any]:
    """The effective context without copying; callers must not mutate it."""
    bound = _bound.get()
    scope = _request.get()
    if not scope:
        return bound
    missing = {key: value for key, value in scope.items() if key not in bound}
    if not missing:
        return bound
    return canonical({**bound, **missing})


_Tokens = tuple[Token[dict[str, Any]], Token["dict[str, Any] | None"]]


def begin_request(request_id: str) -> _Tokens:
    """Start a request scope bound to ``request_id``; pass the result to :func:`restore`."""
    request_token = _request.set({})
    bound_token = _bound.set(merged(_bound.get(), {"request_id": request_id}))
    return bound_token, request_token


def replace(values: Mapping[str, Any]) -> _Tokens:
    """Make ``values`` the whole context (a Celery task starting); undo with :func:`restore`."""
    request_token = _request.set(None)
    bound_token = _bound.set(merged(_EMPTY, values))
    return bound_token, request_token


def restore(tokens: _Tokens) -> None:
    """Go back to the context from before :func:`begin_request` or :func:`replace`.

    Falls back to an empty context when the tokens were made in another context (a signal
    handler running somewhere unexpected must not raise into the framework).
    """
    bound_token, request_token = tokens
    try:
        _bound.reset(bound_token)
        _request.reset(request_token)
    except ValueError:
        _bound.set(_EMPTY)
        _request.set(None)
