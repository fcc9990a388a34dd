"""Direct shipping: the JSON record, as a dict, to a Fluent forward input (the shipper's ``forward``).

Built on fluent-logger's asynchronous handler: records go into a bounded circular queue that a
background thread drains, so a slow or absent shipper drops the oldest records instead of
blocking or failing the application. stdout stays the durable path; this one is best effort.
"""

from __future__ import annotations

import errno
import logging
import os
import time
import weakref
from typing import Any

import orjson
from fluent import asynchandler, asyncsender

from ._formatter import JsonFormatter

__all__ = ["FluentForwardHandler"]

_handlers: weakref.WeakSet[FluentForwardHandler] = weakref.WeakSet()


class _Sender(asyncsender.FluentSender):
    """fluent-logger's queueing sender that, after a failed connection, waits ``retry_interval``
    before the next attempt instead of trying again for every queued record."""

    def __init__(self, *args: Any, retry_interval: float = 1.0, **kwargs: Any) -> None:
        self.retry_interval = retry_interval
        self._retry_at = 0.0
        super().__init__(*args, **kwargs)

    def _reconnect(self) -> None:
        if not self.socket and time.monotonic() < self._retry_at:
            raise OSError(errno.ECONNREFUSED, "forward peer unavailable, waiting before the next attempt")
        try:
            super()._reconnect()
        except OSError:
            self._retry_at = time.monotonic() + self.retry_interval
            raise


class FluentForwardHandler(asynchandler.FluentHandler):
    """Sends each record to ``host:port`` with the tag ``tag``, without ever blocking ``emit``.

    ``queue_maxsize`` (records) and ``bufmax`` (bytes kept while the peer is unreachable) bound
    memory; ``timeout`` bounds each connection attempt of the sender thread, ``retry_interval``
    spaces them; ``close_timeout`` bounds how long shutdown waits for queued records to go out.
    """

    _sender: Any  # fluent-logger's sender, created on first emit

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 24224,
        tag: str = "ecvi",
        *,
        queue_maxsize: int = 10_000,
        bufmax: int = 1024 * 1024,
        timeout: float = 1.0,
        retry_interval: float = 1.0,
        close_timeout: float = 2.0,
    ) -> None:
        super().__init__(
            tag,
            host=host,
            port=port,
            timeout=timeout,
            nanosecond_precision=True,
            queue_maxsize=queue_maxsize,
            queue_circular=True,
            bufmax=bufmax,
            retry_interval=retry_interval,
        )
        self.close_timeout = close_timeout
        self.setFormatter(JsonFormatter())
        _handlers.add(self)

    def getSenderClass(self) -> type[_Sender]:
        return _Sender

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # The same bytes as the stdout line, decoded: one schema whichever path a line takes.
            data = orjson.loads(self.format(record))
            self.sender.emit_with_time(None, record.created, data)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        sender = self._sender
        if sender is not None:
            deadline = time.monotonic() + self.close_timeout
            while not sender._queue.empty() and time.monotonic() < deadline:
                time.sleep(0.01)
            with self.lock:
                self._sender = None
            # Whatever did not go out in time is dropped rather than holding up the exit.
            sender.close(flush=False)
        logging.Handler.close(self)

    def _forget_sender(self) -> None:
        # After fork the sender thread exists only in the parent; a fresh one starts on first use.
        self._sender = None


def _after_fork_in_child() -> None:
    for handler in list(_handlers):
        handler._forget_sender()


os.register_at_fork(after_in_child=_after_fork_in_child)


def handler_from_options(options: dict[str, Any], service: str) -> FluentForwardHandler:
    """Build the handler for ``configure(fluent={...})``; the tag defaults to ``ecvi.<service>``."""
    options = dict(options)
    options.setdefault("tag", f"ecvi.{service}")
    return FluentForwardHandler(**options)
