"""Resending a request the backend refused as too large (HTTP 413) in halves, for the HTTP sinks.

A 413 comes from the backend's own body limit (Elasticsearch's ``http.max_content_length``) or a
proxy before it, neither of which the shipper can read in advance: smaller requests are the only
way through, and ``batch.max_bytes`` should be lowered so this stays rare.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from shipper.event import Event
from shipper.sinks._common.outcome import SendOutcome, SinkError, error_outcome

log = logging.getLogger("shipper.sinks")

R = TypeVar("R")


class RequestTooLarge(SinkError):
    """The backend (or a proxy before it) refused the request body as too large (HTTP 413)."""


def halves(events: list[Event]) -> tuple[list[Event], list[Event]]:
    """The two halves of a list of events (the first is the shorter one)."""
    mid = len(events) // 2
    return events[:mid], events[mid:]


async def send_halving(request: R, send: Callable[[R], Awaitable[SendOutcome]],
                       split: Callable[[R], Sequence[R]], events: Callable[[R], list[Event]],
                       *, sink: str) -> SendOutcome:
    """``send(request)``; when it raises :class:`RequestTooLarge`, send each half the same way.

    ``split`` cuts a request in two and ``events`` lists a request's events, so a sink may halve
    its encoded request instead of encoding again. An event too large on its own is rejected with
    the backend's reason. A half that fails as a whole (see
    :func:`~shipper.sinks._common.outcome.error_outcome`) costs only its own events: the halves
    already accepted stay accepted.
    """
    try:
        return await send(request)
    except RequestTooLarge as exc:
        evs = events(request)
        if len(evs) <= 1:
            return SendOutcome(rejected=[(e, exc.reason) for e in evs], reason=exc.reason)
        log.warning("sink %s: %s; sending the %d events in two halves", sink, exc.reason, len(evs))
        out = SendOutcome(reason=exc.reason)
        for half in split(request):
            try:
                part = await send_halving(half, send, split, events, sink=sink)
            except Exception as err:
                known = error_outcome(err, events(half))
                if known is None:
                    raise
                part = known
            out.add(part)
        return out
