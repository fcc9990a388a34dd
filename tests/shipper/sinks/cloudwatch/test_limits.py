"""The PutLogEvents limits AWS enforces (and moto does not), as pure functions."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from shipper.event import Event
from shipper.sinks.cloudwatch.limits import (
    EVENT_OVERHEAD_BYTES,
    MAX_AGE_MS,
    MAX_AHEAD_MS,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    MAX_SPAN_MS,
    TRUNCATION_MARKER,
    LogEvent,
    clean_group_name,
    clean_stream_name,
    rejected_by_info,
    split_for_put,
    time_window_reason,
    to_log_event,
    truncate_utf8,
)

T0 = 1_700_000_000_000  # ms


def _le(ts_ms: int, message: str = "x", n: int = 0) -> LogEvent:
    return to_log_event(Event({"n": n}, message, ts_ms * 1_000_000))


def test_size_counts_utf8_bytes_plus_26() -> None:
    assert _le(T0, "abc").size == 3 + 26
    assert _le(T0, "é€😀").size == 2 + 3 + 4 + 26
    assert EVENT_OVERHEAD_BYTES == 26


def test_timestamp_is_milliseconds_from_ns() -> None:
    le = to_log_event(Event({}, "x", 1_700_000_000_123_999_999))
    assert le.timestamp == 1_700_000_000_123
    assert le.to_api() == {"timestamp": 1_700_000_000_123, "message": "x"}


def test_message_is_the_raw_line() -> None:
    le = to_log_event(Event({"message": "parsed"}, '{"message": "parsed"}', T0 * 1_000_000))
    assert le.message == '{"message": "parsed"}'
    assert not le.truncated


def test_lone_surrogates_become_replacement_characters() -> None:
    le = to_log_event(Event({}, "bad \udcff byte", T0 * 1_000_000))
    assert le.message == "bad \ufffd byte"
    assert le.size == len(le.message.encode()) + 26


def test_event_at_the_size_limit_is_kept_whole() -> None:
    largest = "a" * (MAX_EVENT_BYTES - 26)
    le = _le(T0, largest)
    assert not le.truncated
    assert le.size == MAX_EVENT_BYTES == 1_048_576


def test_event_over_the_size_limit_is_truncated_with_a_marker() -> None:
    le = _le(T0, "a" * (MAX_EVENT_BYTES - 25))
    assert le.truncated
    assert le.message.endswith(TRUNCATION_MARKER)
    assert le.size == MAX_EVENT_BYTES
    assert len(le.message.encode()) == MAX_EVENT_BYTES - 26


def test_truncation_with_the_older_256k_limit() -> None:
    le = to_log_event(Event({}, "b" * 300_000, T0 * 1_000_000), max_event_bytes=262_144)
    assert le.truncated and le.size == 262_144
    assert len(le.message.encode()) == 262_118


def test_truncation_never_splits_a_multibyte_character() -> None:
    for cut in range(20, 30):
        text, data, truncated = truncate_utf8("€" * 40, cut)
        assert truncated
        assert len(data) <= cut
        assert data.decode("utf-8") == text  # still valid UTF-8
        assert text.endswith(TRUNCATION_MARKER)
        assert set(text.removesuffix(TRUNCATION_MARKER)) <= {"€"}


def test_too_old_and_too_new_are_reasons_to_reject() -> None:
    now = T0
    assert time_window_reason(now, now) is None
    assert time_window_reason(now - MAX_AGE_MS, now) is None
    assert (time_window_reason(now - MAX_AGE_MS - 1, now) or "").startswith("too_old:")
    assert time_window_reason(now + MAX_AHEAD_MS, now) is None
    assert (time_window_reason(now + MAX_AHEAD_MS + 1, now) or "").startswith("too_new:")
    assert MAX_AGE_MS == 14 * 86_400_000 and MAX_AHEAD_MS == 2 * 3_600_000


def test_split_sorts_chronologically_and_keeps_ties_in_order() -> None:
    events = [_le(T0 + 5, n=0), _le(T0 + 1, n=1), _le(T0 + 5, n=2), _le(T0, n=3)]
    [call] = split_for_put(events)
    assert [e.event.record["n"] for e in call] == [3, 1, 0, 2]


def test_split_on_bytes_counts_the_26_byte_overhead() -> None:
    # Four events of exactly 262,144 bytes with overhead fill 1,048,576 bytes exactly.
    quarter = "q" * (MAX_BATCH_BYTES // 4 - 26)
    assert [len(c) for c in split_for_put([_le(T0 + i, quarter) for i in range(4)])] == [4]
    assert [len(c) for c in split_for_put([_le(T0 + i, quarter) for i in range(5)])] == [4, 1]
    # Without the overhead these would fit; with it the fourth does not.
    almost = "q" * (MAX_BATCH_BYTES // 4 - 20)
    assert [len(c) for c in split_for_put([_le(T0 + i, almost) for i in range(4)])] == [3, 1]


def test_split_at_10000_events() -> None:
    calls = split_for_put([_le(T0 + i // 100) for i in range(MAX_BATCH_EVENTS * 2 + 1)])
    assert [len(c) for c in calls] == [10_000, 10_000, 1]


def test_split_keeps_each_call_within_24_hours() -> None:
    ts = [T0, T0 + 3_600_000, T0 + MAX_SPAN_MS - 1, T0 + MAX_SPAN_MS, T0 + 2 * MAX_SPAN_MS + 5]
    calls = split_for_put([_le(t) for t in reversed(ts)])
    assert [[e.timestamp for e in c] for c in calls] == [ts[:3], ts[3:4], ts[4:]]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3 * MAX_SPAN_MS), st.integers(0, 300_000)), min_size=0, max_size=60
    )
)
def test_split_respects_every_limit(specs: list[tuple[int, int]]) -> None:
    events = [_le(T0 + off, "m" * (size % 300_000 + 1), n=i) for i, (off, size) in enumerate(specs)]
    calls = split_for_put(events)
    flat = [e for c in calls for e in c]
    assert sorted(e.event.record["n"] for e in flat) == list(range(len(events)))
    assert [e.timestamp for e in flat] == sorted(e.timestamp for e in events)
    for call in calls:
        assert 1 <= len(call) <= MAX_BATCH_EVENTS
        assert sum(e.size for e in call) <= MAX_BATCH_BYTES
        assert call[-1].timestamp - call[0].timestamp < MAX_SPAN_MS
        assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(call))


def test_rejected_log_events_info_maps_back_to_events() -> None:
    call = [_le(T0 + i, n=i) for i in range(10)]
    info = {"tooOldLogEventEndIndex": 2, "expiredLogEventEndIndex": 3, "tooNewLogEventStartIndex": 8}
    got = [(e.event.record["n"], reason.split(":")[0]) for e, reason in rejected_by_info(call, info)]
    assert got == [(0, "too_old"), (1, "too_old"), (2, "expired"), (8, "too_new"), (9, "too_new")]


def test_rejected_log_events_info_edge_cases() -> None:
    call = [_le(T0 + i, n=i) for i in range(3)]
    assert rejected_by_info(call, None) == []
    assert rejected_by_info(call, {}) == []
    assert rejected_by_info(call, {"tooOldLogEventEndIndex": 0}) == []  # exclusive end
    all_new = rejected_by_info(call, {"tooNewLogEventStartIndex": 0})
    assert [e.event.record["n"] for e, _ in all_new] == [0, 1, 2]
    assert len(rejected_by_info(call, {"tooOldLogEventEndIndex": 99, "tooNewLogEventStartIndex": 99})) == 3


def test_names_are_made_valid() -> None:
    assert clean_group_name("/ecvi/my service:v1", "unknown") == "/ecvi/my_service_v1"
    assert clean_group_name("", "unknown") == "unknown"
    assert clean_stream_name("pod:a*b", "unknown") == "pod_a_b"
    assert clean_stream_name("web-7d9f ✓", "unknown") == "web-7d9f ✓"
    assert len(clean_stream_name("s" * 600, "unknown")) == 512
