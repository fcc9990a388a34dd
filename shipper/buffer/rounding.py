"""When a buffer read that reached a sink's batch limits takes more records (``round_up``).

Records rarely hold a whole number of a sink's batches (a file source record is one read of a
file), so a sink whose batches are smaller than a record would send one short batch per record. A
read whose first record reached a limit goes on with records already written while the limits would
not divide it evenly. Reads of several smaller records are left as they are: their short batch is
a smaller share, and rounding them up held whole batches more in memory (real Loki, 5,000-event
batches: peak RSS 81 -> 95-125 MiB for no CPU gain). Record bytes stand for the sink's own measure
of size (close, not equal: an estimate is enough).
"""

from __future__ import annotations

ROUND_UP_BATCHES = 4  # a rounded-up read holds at most this many times max_events
ROUND_UP_BYTES = 4 * 1024 * 1024  # and at most this much past max_bytes


def wants_more(events: int, size: int, max_events: int, max_bytes: int) -> bool:
    """Whether a read of ``events`` and ``size`` bytes that reached a limit takes one more record:
    within the bounds above, while its last batch would be short of the limit that cuts the read
    first (the one it holds more multiples of)."""
    if events >= ROUND_UP_BATCHES * max_events or size >= max_bytes + ROUND_UP_BYTES:
        return False
    if events * max_bytes >= size * max_events:  # events / max_events >= size / max_bytes
        return _short(events, max_events)
    return _short(size, max_bytes)


def _short(n: int, limit: int) -> bool:
    """Whether cutting ``n`` into parts of ``limit`` leaves a last part under 90 % of it."""
    rest = n % limit
    return rest > 0 and rest * 10 < limit * 9
