"""What every source is given (a ``deliver`` coroutine that makes a batch durable downstream) and
what every running source offers (:class:`Source`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from shipper.event import Event
from shipper.lines import Item

Deliver = Callable[[list[Event]], Awaitable[None]]
"""``await deliver(events)`` returns once every event is written to every target sink's buffer.

It waits (backpressure) while a buffer is full. A source moves its checkpoint or sends its
acknowledgement only after it returns; if it raises, the source must not acknowledge.
"""

DeliverItems = Callable[[list[Item]], Awaitable[None]]
"""Like :data:`Deliver`, for a source that hands on :class:`~shipper.lines.LineBatch` columns too."""


class Source(Protocol):
    """A running source, as the topology and ``ecvi-logs tap`` hold it: it stops the same way
    whatever its type (a file source also runs as a task; a forward source listens once started)."""

    name: str

    async def stop(self) -> None:
        """Stop reading or accepting; what was delivered stays acknowledged."""
        ...
