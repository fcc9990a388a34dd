"""Sending one batch as several calls in turn (one per destination or object), keeping what earlier
calls stored: only the failed call's events and those of the calls not made yet are retried."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from shipper.event import Event
from shipper.sinks._common.outcome import SendOutcome, error_outcome

log = logging.getLogger("shipper.sinks")

C = TypeVar("C")


async def send_in_turn(calls: Sequence[C], send_call: Callable[[C], Awaitable[SendOutcome]],
                       events_of: Callable[[C], list[Event]], *, sink: str,
                       outcome: SendOutcome | None = None) -> SendOutcome:
    """Make ``calls`` one after the other; their outcomes are added to ``outcome`` (or a new one).

    A call returns its own outcome (events refused for good in ``rejected``, bytes sent). A call that
    fails as a whole decides for itself and for every call not made yet: a
    :class:`~.outcome.TransientSinkError` or network error retries them, a
    :class:`~.outcome.PermanentSinkError` rejects them, and anything else (a bug rather than the
    backend) retries them, the resend meeting the delivery's bounded handling of surprises. When
    the first call fails as a whole before anything was decided, its error is the batch's and
    propagates, so the delivery sees one failed request.
    """
    out = outcome if outcome is not None else SendOutcome()
    for i, call in enumerate(calls):
        try:
            part = await send_call(call)
        except Exception as exc:
            if i == 0 and not out.rejected:
                raise
            rest = [e for c in calls[i:] for e in events_of(c)]
            failed = error_outcome(exc, rest)
            if failed is None:
                log.exception("sink %s: unexpected error in call %d of %d", sink, i + 1, len(calls))
                failed = SendOutcome(retry=rest, reason=f"unexpected {type(exc).__name__}: {exc}")
            out.add(failed)
            out.reason = failed.reason
            return out
        out.add(part)
    return out
