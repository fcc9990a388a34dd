"""UTC days: parsing ``YYYY-MM-DD`` and ``29d``, day bounds in nanoseconds, which days a run covers."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

NS_PER_SEC = 1_000_000_000
DAY_NS = 86_400 * NS_PER_SEC

_AGE = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
_AGE_UNITS = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}


def parse_day(text: str) -> date:
    """``2025-01-31`` as a date; raises ValueError naming the expected form."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a day: expected YYYY-MM-DD") from None


def parse_age(text: str) -> timedelta:
    """``29d``, ``36h`` or ``90m`` as a timedelta."""
    m = _AGE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not an age: expected a number and d, h or m (e.g. 29d)")
    return int(m.group(1)) * _AGE_UNITS[m.group(2)]


def day_start_ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * NS_PER_SEC


def day_bounds_ns(day: date) -> tuple[int, int]:
    """``[start, end)`` of the UTC day in nanoseconds since the epoch."""
    start = day_start_ns(day)
    return start, start + DAY_NS


def day_of_ns(ts_ns: int) -> date:
    """The UTC day a timestamp falls on."""
    return datetime.fromtimestamp(ts_ns // NS_PER_SEC, UTC).date()


def iso_ns(ts_ns: int) -> str:
    """RFC 3339 with nanoseconds (``2025-01-01T00:00:00.000000001Z``), for queries and messages."""
    secs, ns = divmod(ts_ns, NS_PER_SEC)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


def utcnow() -> datetime:
    return datetime.now(UTC)


def days_older_than(age: timedelta, now: datetime, lookback: int = 7) -> list[date]:
    """Days, oldest first, whose first moment is at least ``age`` before ``now`` and which are over.

    ``lookback`` days are returned, ending with the newest such day: a daily run then catches up
    on days a missed run left behind. With ``29d`` a day is archived a full day before a 30-day
    retention starts deleting it.
    """
    if lookback < 1:
        raise ValueError("lookback must be at least 1 day")
    cutoff = now - age
    newest = cutoff.date()
    while datetime(newest.year, newest.month, newest.day, tzinfo=UTC) + timedelta(days=1) > now:
        newest -= timedelta(days=1)  # the day is not over yet
    return [newest - timedelta(days=i) for i in range(lookback - 1, -1, -1)]


def is_over(day: date, now: datetime) -> bool:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1) <= now


def settled_days(settle: timedelta, now: datetime, retention: timedelta) -> list[date]:
    """Days, oldest first, that ended at least ``settle`` ago and began less than ``retention`` ago.

    The early archive's window: a day is archived once the backends' out-of-order window and the
    shippers' buffering have passed (``settle``), and checked for late lines every run after that
    until the backend starts deleting it, so a failed night is retried for weeks, not hours.
    """
    if settle < timedelta(0):
        raise ValueError("settle time cannot be negative")
    oldest = (now - retention).date()
    if datetime(oldest.year, oldest.month, oldest.day, tzinfo=UTC) < now - retention:
        oldest += timedelta(days=1)  # began before the retention cut: the backend may be deleting it
    out = []
    day = oldest
    while datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1) + settle <= now:
        out.append(day)
        day += timedelta(days=1)
    return out


def days_expiring_within(retention: timedelta, within: timedelta, now: datetime) -> list[date]:
    """Days, oldest first, that a backend keeping ``retention`` starts deleting in the next ``within``.

    Age counts from a day's start, as Loki's compactor, CloudWatch and ILM (on a daily index) do.
    """
    out = []
    day = (now - retention).date()
    while datetime(day.year, day.month, day.day, tzinfo=UTC) + retention <= now + within:
        if datetime(day.year, day.month, day.day, tzinfo=UTC) + retention > now:
            out.append(day)
        day += timedelta(days=1)
    return out
