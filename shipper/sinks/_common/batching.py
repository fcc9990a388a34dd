"""Cutting a list of events (or of line batches) into batches within a sink's ``batch`` limits."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from shipper.event import Event
from shipper.lines import LineBatch


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


def split_line_batches(batches: list[LineBatch], max_events: int, max_bytes: int,
                       size: Callable[[LineBatch], int]) -> Iterator[list[LineBatch]]:
    """Cut ``batches`` into consecutive groups within both limits, cutting a batch where it must
    (at a line: a single line over ``max_bytes`` goes alone)."""
    group: list[LineBatch] = []
    events = nbytes = 0
    for b in batches:
        while len(b):
            s = size(b)
            if events + len(b) <= max_events and nbytes + s <= max_bytes:
                group.append(b)
                events += len(b)
                nbytes += s
                break
            room = max_events - events
            if nbytes + s > max_bytes:  # lines that fit by bytes, from the batch's average line size
                room = min(room, (max_bytes - nbytes) * len(b) // s)
            if room <= 0:
                if group:
                    yield group
                    group, events, nbytes = [], 0, 0
                    continue
                room = 1
            head, b = b.split(min(room, len(b)))
            group.append(head)
            events += len(head)
            nbytes += size(head)
            yield group
            group, events, nbytes = [], 0, 0
    if group:
        yield group
