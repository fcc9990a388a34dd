"""What a sink's ``send`` reports, and the errors it raises, so one shared loop can act on it."""

from __future__ import annotations

from dataclasses import dataclass, field

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
