"""What a sink's ``send`` reports, the errors it raises, and the one mapping from errors to outcomes.

Every place that turns a failed request into per-event results (the shared delivery, a sink that
sends a batch in several requests) goes through :func:`error_outcome`, so an error means the same
thing wherever it is met.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from shipper.errors import ShipperError
from shipper.event import Event


@dataclass(slots=True)
class SendOutcome:
    """The backend's answer to one request, event by event.

    Everything not listed in ``retry`` or ``rejected`` was accepted. ``retry`` holds events that
    failed for a transient reason (resent after a backoff, honouring ``retry_after``);
    ``rejected`` holds events that can never succeed, each with the backend's reason
    (written to the dead-letter file).
    """

    retry: list[Event] = field(default_factory=list)
    rejected: list[tuple[Event, str]] = field(default_factory=list)
    reason: str = ""
    retry_after: float | None = None
    sent_bytes: int = 0

    @classmethod
    def ok(cls, sent_bytes: int = 0) -> SendOutcome:
        return cls(sent_bytes=sent_bytes)

    def add(self, part: SendOutcome) -> None:
        """Fold in the outcome of one more request of the same send (a half, a later call).

        The reason becomes the part's when the part has events to retry (the reason a retry is
        logged and counted under); the longest ``retry_after`` wins.
        """
        self.retry.extend(part.retry)
        self.rejected.extend(part.rejected)
        self.sent_bytes += part.sent_bytes
        if part.retry_after is not None:
            self.retry_after = max(self.retry_after or 0.0, part.retry_after)
        if part.reason and (part.retry or not self.reason):
            self.reason = part.reason


class SinkError(ShipperError):
    """A sink request failed as a whole."""

    def __init__(self, sink: str, reason: str) -> None:
        self.sink = sink
        self.reason = reason
        super().__init__(f"sink {sink}: {reason}")


class TransientSinkError(SinkError):
    """Worth retrying: network errors, timeouts, throttling, 5xx."""

    def __init__(self, sink: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(sink, reason)
        self.retry_after = retry_after


class PermanentSinkError(SinkError):
    """The whole request can never succeed as sent (bad auth, bad request): dead-letter it."""


def error_outcome(exc: BaseException, events: list[Event]) -> SendOutcome | None:
    """What a whole-request error means for each of the request's ``events``.

    :class:`TransientSinkError` and network errors (httpx transport errors, timeouts, ``OSError``):
    all retried. :class:`PermanentSinkError`: all rejected with its reason. Anything else is a
    surprise (a bug, an event the sink cannot encode): ``None``, and the caller decides.
    """
    if isinstance(exc, TransientSinkError):
        return SendOutcome(retry=list(events), reason=exc.reason, retry_after=exc.retry_after)
    if isinstance(exc, PermanentSinkError):
        return SendOutcome(rejected=[(e, exc.reason) for e in events], reason=exc.reason)
    if isinstance(exc, (httpx.TransportError, TimeoutError, OSError)):
        return SendOutcome(retry=list(events), reason=f"{type(exc).__name__}: {exc}")
    return None

