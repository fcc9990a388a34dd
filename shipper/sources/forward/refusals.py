"""Connections the forward source refuses or closes: counted per reason, logged at a bounded rate.

A hostile peer can open thousands of connections a second; one warning each would flood the
shipper's own log. Every refusal is counted in ``ecvi_shipper_connections_refused``; the log gets
at most one line per reason per ``interval_secs``, carrying how many happened since the last line,
and :meth:`RateLimitedLog.flush` writes the remainder (on stop), so the log's counts add up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from shipper.metrics import CONNECTIONS_REFUSED

LOG_INTERVAL_SECS = 10.0


@dataclass(slots=True)
class _Pending:
    count: int = 0
    last_logged: float = float("-inf")
    latest: str = ""


class RateLimitedLog:
    """Warnings keyed by reason: the first is written at once, later ones are folded into counts."""

    def __init__(
        self,
        logger: logging.Logger,
        prefix: str,
        interval_secs: float = LOG_INTERVAL_SECS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._prefix = prefix
        self._interval = interval_secs
        self._clock = clock
        self._pending: dict[str, _Pending] = {}

    def warning(self, reason: str, message: str) -> None:
        """Note one occurrence of ``reason``; ``message`` describes it (the latest one is logged)."""
        pending = self._pending.setdefault(reason, _Pending())
        pending.count += 1
        pending.latest = message
        now = self._clock()
        if now - pending.last_logged >= self._interval:
            self._write(reason, pending, now)

    def flush(self) -> None:
        """Write a line for every reason with occurrences not logged yet."""
        now = self._clock()
        for reason, pending in self._pending.items():
            if pending.count:
                self._write(reason, pending, now)

    def _write(self, reason: str, pending: _Pending, now: float) -> None:
        since = "" if pending.last_logged == float("-inf") else f" in the last {now - pending.last_logged:.0f}s"
        self._log.warning("%s: %s x%d%s; latest: %s", self._prefix, reason, pending.count, since, pending.latest)
        pending.count = 0
        pending.last_logged = now


class Refusals:
    """Counts and logs the connections one forward source refused or closed, by reason."""

    def __init__(self, source: str, logger: logging.Logger, interval_secs: float = LOG_INTERVAL_SECS) -> None:
        self._source = source
        self.log = RateLimitedLog(logger, f"forward source {source!r}", interval_secs)

    def refuse(self, reason: str, peer: str, detail: str) -> None:
        """Count one connection from ``peer`` refused or closed for ``reason`` and log it (rate-limited)."""
        CONNECTIONS_REFUSED.labels(self._source, reason).inc()
        self.log.warning(reason, f"closed connection from {peer}: {detail}")
