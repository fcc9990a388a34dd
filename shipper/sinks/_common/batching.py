"""Cutting a list of events into batches within a sink's ``batch`` limits."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from shipper.event import Event


def split_batches(events: list[Event], max_events: int, max_bytes: int,
                  size: Callable[[Event], int]) -> Iterator[list[Event]]:
    """Cut ``events`` into consecutive batches within both limits (an oversize event goes alone)."""
    batch: list[Event] = []
    nbytes = 0
    for e in events:
        s = size(e)
        if batch and (len(batch) >= max_events or nbytes + s > max_bytes):
            yield batch
            batch, nbytes = [], 0
        batch.append(e)
        nbytes += s
    if batch:
        yield batch
