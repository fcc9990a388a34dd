from datetime import UTC, date, datetime, timedelta

import pytest

from shipper.archive.days import day_bounds_ns, day_of_ns, days_older_than, is_over, iso_ns, parse_age, parse_day


def test_parse_day_and_age() -> None:
    assert parse_day("2025-01-31") == date(2025, 1, 31)
    assert parse_age("29d") == timedelta(days=29)
    assert parse_age("36h") == timedelta(hours=36)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_day("31/01/2025")
    with pytest.raises(ValueError, match=r"e\.g\. 29d"):
        parse_age("29 days")


def test_day_bounds_are_half_open_utc() -> None:
    start, end = day_bounds_ns(date(2025, 1, 1))
    assert start == 1_735_689_600 * 10**9
    assert end - start == 86_400 * 10**9
    assert day_of_ns(start) == date(2025, 1, 1)
    assert day_of_ns(end - 1) == date(2025, 1, 1)
    assert day_of_ns(end) == date(2025, 1, 2)
    assert iso_ns(start + 5) == "2025-01-01T00:00:00.000000005Z"


def test_older_than_29d_archives_a_day_before_30d_retention_deletes_it() -> None:
    now = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)
    days = days_older_than(timedelta(days=29), now, lookback=3)
    # 2025-01-31 began 29 days and 1 hour ago; retention at 30 days starts on it tomorrow.
    assert days == [date(2025, 1, 29), date(2025, 1, 30), date(2025, 1, 31)]


def test_older_than_never_returns_a_day_that_is_not_over() -> None:
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert days_older_than(timedelta(hours=1), now, lookback=1) == [date(2025, 2, 28)]
    assert days_older_than(timedelta(hours=26), now, lookback=1) == [date(2025, 2, 28)]
    assert not is_over(date(2025, 3, 1), now)
    assert is_over(date(2025, 2, 28), now)


def test_settled_days_cover_the_retention_window_once_a_day_has_settled() -> None:
    from shipper.archive.days import settled_days

    now = datetime(2025, 3, 1, 2, 17, tzinfo=UTC)
    days = settled_days(timedelta(hours=26), now, timedelta(days=30))
    # 2025-02-27 ended 26h17m ago; 2025-02-28 only 2h17m ago. 2025-01-30 began before the 30-day cut.
    assert days[-1] == date(2025, 2, 27)
    assert days[0] == date(2025, 1, 31)
    assert len(days) == 28
    assert settled_days(timedelta(hours=26), datetime(2025, 3, 1, 1, 59, tzinfo=UTC), timedelta(days=30))[-1] \
        == date(2025, 2, 26)
    midnight = datetime(2025, 3, 1, tzinfo=UTC)
    assert settled_days(timedelta(0), midnight, timedelta(days=2)) == [date(2025, 2, 27), date(2025, 2, 28)]
    with pytest.raises(ValueError, match="negative"):
        settled_days(timedelta(hours=-1), now, timedelta(days=30))
