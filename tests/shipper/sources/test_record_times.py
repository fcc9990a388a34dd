"""RFC 3339 times: the per-second fast path answers exactly as the general parser."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from shipper.sources import records
from shipper.sources.records import parse_rfc3339_ns

_general = records._parse_rfc3339_ns.__wrapped__  # the regex parser, without its cache

DIGITS = st.sampled_from("0123456789" * 6 + "\u0661\uff19\u00b2 x")  # Arabic-Indic, fullwidth, superscript


@st.composite
def times(draw: st.DrawFn) -> str:
    def digits(n: int) -> str:
        return "".join(draw(st.lists(DIGITS, min_size=n, max_size=n)))

    base = f"{digits(4)}-{digits(2)}-{digits(2)}{draw(st.sampled_from('Tt '))}{digits(2)}:{digits(2)}:{digits(2)}"
    frac = "." + digits(draw(st.integers(0, 11))) if draw(st.booleans()) else ""
    zone = draw(st.sampled_from(["Z", "z", "", "+02:00", "-0130", "Z\n", " "]))
    return draw(st.sampled_from(["", " "])) + base + frac + zone


@settings(max_examples=3000, deadline=None)
@given(times())
@example("2025-01-01T00:00:00.123Z")
@example("1969-12-31T23:59:59.500Z")  # the second before the epoch is -1
@example("1969-12-31T23:59:59.5Z")
@example("2025-02-30T00:00:00.123Z")
@example("2025-01-01T24:00:00.123Z")
@example("0001-01-01T00:00:00.000000001Z")
@example("2025-01-01T00:00:00.1234567890Z")
@example("2025-01-01T00:00:00.Z")
@example("2025-01-01T00:00:00.\u0661\u0662\u0663Z")
def test_fast_path_matches_the_general_parser(value: str) -> None:
    assert parse_rfc3339_ns(value) == _general(value)
    assert parse_rfc3339_ns(value) == _general(value)  # again, from the cache


def test_second_before_the_epoch() -> None:
    assert parse_rfc3339_ns("1969-12-31T23:59:59.500Z") == -500_000_000
    assert parse_rfc3339_ns("1969-12-31T23:59:59.250Z") == -750_000_000


def test_cri_times_with_nanoseconds() -> None:
    base = 1_764_374_400 * 10**9
    assert parse_rfc3339_ns("2025-11-29T00:00:00.000000001Z") == base + 1
    assert parse_rfc3339_ns("2025-11-29T00:00:00.999999999Z") == base + 999_999_999
    assert parse_rfc3339_ns("2025-11-29T00:00:00.1234567891Z") == base + 123_456_789  # digits past 9 dropped


def test_each_millisecond_of_a_second() -> None:
    base = 1_764_374_400 * 10**9  # 2025-11-29T00:00:00Z
    assert [parse_rfc3339_ns(f"2025-11-29T00:00:00.{ms:03d}Z") for ms in range(1000)] == [
        base + ms * 1_000_000 for ms in range(1000)]
