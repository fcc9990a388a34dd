"""What every source is given: a ``deliver`` coroutine that makes a batch durable downstream."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from shipper.event import Event

Deliver = Callable[[list[Event]], Awaitable[None]]
"""``await deliver(events)`` returns once every event is written to every target sink's buffer.

It waits (backpressure) while a buffer is full. A source moves its checkpoint or sends its
acknowledgement only after it returns; if it raises, the source must not acknowledge.
"""
