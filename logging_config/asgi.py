"""Request context for ASGI apps (FastAPI, Starlette): a request id on every line, one access line.

A pure ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: that one runs the app in
another task, so context bound inside a request would never reach the access line.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from . import _context, sentry

__all__ = ["RequestContextMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: What an incoming request id may look like; anything else is replaced, so a client cannot
#: put arbitrary text (or a megabyte) into every line of the request.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_SCOPE_KEY = "ecvi.request_id"


class RequestContextMiddleware:
    """Binds ``request_id`` for each request, echoes it back, and logs one access line.

    The id comes from the ``X-Request-ID`` header when it is a sane token, otherwise it is a new
    uuid4 hex. The access line goes to ``ecvi.access`` with ``method``, ``path``, ``status``,
    ``duration_ms`` and ``client``, and carries ``user_id``/``company_id`` once the app has
    called :func:`logging_config.bind_user`.

    ``app.add_middleware(RequestContextMiddleware)`` in FastAPI/Starlette. Wrapping the whole
    app instead (``RequestContextMiddleware(app)``) also puts the header on the 500 answers
    Starlette's outermost error middleware writes. The request id is in ``scope["ecvi.request_id"]``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        header: str = "x-request-id",
        logger: str | logging.Logger = "ecvi.access",
    ) -> None:
        self.app = app
        self.header = header.lower().encode("latin-1")
        self.logger = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or _SCOPE_KEY in scope:
            # Not a request, or an outer instance already handles it (installed twice).
            await self.app(scope, receive, send)
            return
        request_id = self._incoming_request_id(scope) or uuid.uuid4().hex
        scope[_SCOPE_KEY] = request_id
        tokens = _context.begin_request(request_id)
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
            else:
                await self._handle_http(scope, receive, send, request_id)
        finally:
            _context.restore(tokens)

    async def _handle_http(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        status = 500  # what the server answers if the app fails before responding
        finished: float | None = None
        echoed = (self.header, request_id.encode("latin-1"))

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if not any(name.lower() == self.header for name, _ in headers):
                    headers.append(echoed)
                message = {**message, "headers": headers}
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = time.perf_counter()

        started = time.perf_counter()
        event_id: str | None = None
        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception as error:
            # Reported here, while the request's context is still bound: the framework's own
            # report (outside this middleware) comes after the context ended, and is dropped
            # by Sentry as a duplicate of this one.
            event_id = sentry.capture_exception(error)
            raise
        finally:
            # Timed to the last byte of the response, not including background tasks that
            # Starlette runs afterwards; logged after them, so what they bind is on the line.
            ended = finished if finished is not None else time.perf_counter()
            self._log_access(scope, status, (ended - started) * 1000, event_id)
            sentry.tag_transaction()

    def _incoming_request_id(self, scope: Scope) -> str | None:
        for name, value in scope.get("headers", ()):
            if name == self.header:
                candidate = value.decode("latin-1")
                return candidate if _VALID_REQUEST_ID.fullmatch(candidate) else None
        return None

    def _log_access(self, scope: Scope, status: int, duration_ms: float, event_id: str | None = None) -> None:
        method = scope.get("method", "")
        path = scope.get("path", "")
        fields: dict[str, Any] = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(duration_ms, 3),
        }
        client = scope.get("client")
        if client:
            fields["client"] = f"{client[0]}:{client[1]}"
        if event_id is not None:
            fields["sentry_event_id"] = event_id
        if status >= 500:
            # The error itself goes to Sentry with its exception, not as this line's message.
            fields["_ecvi_sentry_skip"] = True
        level = logging.ERROR if status >= 500 else logging.INFO
        self.logger.log(level, "%s %s %s", method, path, status, extra=fields)
