"""Hostile content in one event: times outside int64 ns and records nested too deep for the encoders.

One bad record costs at most itself: its time is replaced by the read time, a too-deep object is
kept as text, each flagged in ``meta["repaired"]`` and counted; its batch neighbours are untouched.
"""

import struct
import time
from pathlib import Path

import msgpack
import orjson
import pytest

from shipper import metrics
from shipper.buffer import DiskBuffer
from shipper.event import MAX_RECORD_DEPTH, Event, pack_events, record_from_payload, unpack_events
from shipper.sources.forward.entries import build_events
from tests.shipper._support import tail_lines

INT64_MAX = 2**63 - 1


def _repaired(source: str, reason: str) -> float:
    return metrics.REGISTRY.get_sample_value(
        "ecvi_shipper_events_repaired_total", {"component": f"source:{source}", "reason": reason}) or 0.0


def _line(n: int, ts: str = "2025-01-01T00:00:00.000Z") -> str:
    return orjson.dumps({"timestamp": ts, "level": "info", "message": f"m{n}"}).decode()


def _deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("bad_ts", ["9999-12-31T23:59:59Z", "1600-01-01T00:00:00Z"])
def test_out_of_range_time_is_replaced_by_read_time(tmp_path: Path, bad_ts: str) -> None:
    source = f"t{bad_ts[:4]}"
    before = _repaired(source, "time_out_of_range")
    t0 = time.time_ns()
    events = tail_lines(tmp_path, [_line(1), _line(2, bad_ts), _line(3)], source)
    t1 = time.time_ns()
    assert [type(e.ts_ns) for e in events] == [int, int, int]
    good = 1735689600 * 10**9
    assert events[0].ts_ns == events[2].ts_ns == good
    assert t0 <= events[1].ts_ns <= t1
    assert events[1].meta["repaired"] == ["time_out_of_range"]
    assert "repaired" not in events[0].meta
    assert events[1].record["timestamp"] == bad_ts  # the record still says what the line said
    assert _repaired(source, "time_out_of_range") == before + 1


@pytest.mark.parametrize("bad_ts", ["9999-12-31T23:59:59Z", "1600-01-01T00:00:00Z"])
@pytest.mark.anyio
async def test_out_of_range_time_survives_pack_and_disk_buffer(tmp_path: Path, bad_ts: str) -> None:
    events = tail_lines(tmp_path, [_line(1), _line(2, bad_ts), _line(3)], "tbuf")
    again = unpack_events(pack_events(events))
    assert [e.ts_ns for e in again] == [e.ts_ns for e in events]
    assert all(type(e.ts_ns) is int for e in again)
    assert again[1].meta["repaired"] == ["time_out_of_range"]

    buf = DiskBuffer(tmp_path / "buf", "tbuf")
    await buf.append(events)
    chunks = await buf.read(100, 1 << 20, 0.01)
    buf.ack(chunks)
    await buf.close()
    got = [e for c in chunks for e in c.events]
    assert [e.raw for e in got] == [e.raw for e in events]
    assert [e.ts_ns for e in got] == [e.ts_ns for e in events]
    assert [e.record["message"] for e in got] == ["m1", "m2", "m3"]


@pytest.mark.parametrize("ts", [2**63, -(2**63) - 1, 10**30, "1735689600", 1.5e18, float("nan"), None, True])
def test_event_never_holds_a_time_outside_int64(ts: object) -> None:
    e = Event({"message": "x"}, "x", ts, {"source": "direct"})  # type: ignore[arg-type]
    assert type(e.ts_ns) is int
    assert -(2**63) <= e.ts_ns <= INT64_MAX
    if ts == 1.5e18:
        assert e.ts_ns == 1_500_000_000_000_000_000 and "repaired" not in e.meta
    else:
        assert e.meta["repaired"] == ["time_out_of_range"]


def test_int64_bounds_are_kept() -> None:
    for ts in (INT64_MAX, -(2**63), 0):
        e = Event(None, "x", ts)
        assert e.ts_ns == ts and "repaired" not in e.meta
        assert unpack_events(pack_events([e]))[0].ts_ns == ts


def test_infinite_or_nan_numeric_time_does_not_break_the_source(tmp_path: Path) -> None:
    # 1e400 is not JSON orjson accepts, but a huge number is: it must not raise in the source.
    lines = ['{"ts": 1e300, "message": "big"}', '{"ts": 12345678901234567890123, "message": "huge"}', _line(3)]
    events = tail_lines(tmp_path, lines, "tnum")
    assert len(events) == 3
    assert events[0].meta["repaired"] == ["time_out_of_range"]
    assert events[1].meta["repaired"] == ["time_out_of_range"]
    assert all(-(2**63) <= e.ts_ns <= INT64_MAX for e in events)


def test_forward_event_time_out_of_range_is_repaired() -> None:
    before = _repaired("fwd", "time_out_of_range")
    far = msgpack.ExtType(0, struct.pack(">II", 2**32 - 1, 0))  # ~2106: fits; 2**40 s does not
    entries = [[1735689600, {"message": "a"}], [far, {"message": "b"}],
               [2**40, {"message": "c"}], [1735689600, {"message": "d"}],
               [1735689600, {"message": "e", "ts": float("nan")}], [1735689600, {"message": "f", "ts": float("inf")}]]
    events, skipped = build_events(entries, "tag", "fwd", time.time_ns)
    assert skipped == []
    assert [e.record["message"] for e in events] == ["a", "b", "c", "d", "e", "f"]
    assert events[4].ts_ns == events[5].ts_ns == 1735689600 * 10**9  # a non-finite record time is no time
    assert events[1].ts_ns == (2**32 - 1) * 10**9
    assert events[2].meta["repaired"] == ["time_out_of_range"]
    assert abs(events[2].ts_ns - time.time_ns()) < 60 * 10**9
    assert _repaired("fwd", "time_out_of_range") == before + 1
    assert unpack_events(pack_events(events))[2].ts_ns == events[2].ts_ns


@pytest.mark.parametrize("depth", [MAX_RECORD_DEPTH + 1, 300, 1000])
def test_too_deep_object_is_kept_as_text(depth: int) -> None:
    payload = _deep(depth)
    assert record_from_payload(payload) == {"message": payload}
    ok = _deep(MAX_RECORD_DEPTH)
    assert record_from_payload(ok) == orjson.loads(ok)


def test_wide_but_shallow_object_is_parsed() -> None:
    payload = orjson.dumps({"items": [{"a": [i]} for i in range(400)]}).decode()
    assert record_from_payload(payload)["items"][399] == {"a": [399]}


@pytest.mark.parametrize("depth", [300, 1000])
def test_too_deep_line_from_a_file_is_flagged_and_counted(tmp_path: Path, depth: int) -> None:
    source = f"deep{depth}"
    before = _repaired(source, "too_deep")
    events = tail_lines(tmp_path, [_line(1), _deep(depth), _line(3)], source)
    assert events[1].record == {"message": _deep(depth)}
    assert events[1].meta["repaired"] == ["too_deep"]
    assert _repaired(source, "too_deep") == before + 1
    again = unpack_events(pack_events(events))
    assert again[1].record == {"message": _deep(depth)}
    assert again[1].meta["repaired"] == ["too_deep"]
    assert _repaired(source, "too_deep") == before + 1  # reading the buffer is not a second repair
    for e in again:
        orjson.dumps({"event": {"record": e.record, "meta": e.meta}})  # every envelope encodes


def test_too_deep_line_parsed_lazily_is_flagged_when_parsed(tmp_path: Path) -> None:
    # logging_config's own lines start with the timestamp: the source takes the time unparsed.
    line = '{"timestamp":"2025-01-01T00:00:00.000Z","a":' + _deep(300) + "}"
    before = _repaired("lazy", "too_deep")
    events = tail_lines(tmp_path, [_line(1), line], "lazy")
    assert events[1].ts_ns == 1735689600 * 10**9
    again = unpack_events(pack_events(events))
    assert again[1].record == {"message": line}
    assert again[1].meta["repaired"] == ["too_deep"]
    assert _repaired("lazy", "too_deep") == before + 1
    assert again[0].record["message"] == "m1" and "repaired" not in again[0].meta


def test_too_deep_cri_payload_is_flagged(tmp_path: Path) -> None:
    line = f"2025-01-01T00:00:00.000000000Z stdout F {_deep(400)}"
    events = tail_lines(tmp_path, [line], "deepcri", fmt="cri")
    assert events[0].record == {"message": _deep(400)}
    assert events[0].meta["repaired"] == ["too_deep"]


def test_too_deep_forward_record_is_kept_as_text() -> None:
    deep: object = 1
    for _ in range(MAX_RECORD_DEPTH + 20):  # deeper than the limit, still encodable by orjson
        deep = {"a": deep}
    before = _repaired("fwdd", "too_deep")
    events, skipped = build_events([[1, {"message": "ok"}], [1, {"x": deep}]], "t", "fwdd", time.time_ns)
    assert skipped == []
    assert events[0].record == {"message": "ok"}
    assert events[1].record == {"message": events[1].raw}
    assert events[1].meta["repaired"] == ["too_deep"]
    assert _repaired("fwdd", "too_deep") == before + 1
    orjson.dumps({"event": {"record": events[1].record}})


def test_unpackable_value_costs_only_its_event() -> None:
    bad = Event({"message": "b", "obj": object()}, "b", 2, {"source": "pk"})
    big = Event({"message": "c", "n": 2**70}, "c", 3, {"source": "pk"})
    events = [Event({"message": "a"}, "a", 1, {"source": "pk"}), bad, big, Event(None, '{"message":"d"}', 4)]
    got = unpack_events(pack_events(events))
    assert [e.raw for e in got] == ["a", "b", "c", '{"message":"d"}']
    assert [e.ts_ns for e in got] == [1, 2, 3, 4]
    assert got[0].record == {"message": "a"} and got[3].record == {"message": "d"}
    assert got[1].record["message"] == "b" and isinstance(got[1].record["obj"], str)
    assert got[2].record["message"] == "c"
    assert got[1].meta["repaired"] == ["unpackable"]


def test_time_set_out_of_range_after_the_event_was_made_is_repaired_when_stored() -> None:
    events = [Event(None, "a", 1), Event(None, "b", 2), Event(None, "c", 3)]
    events[1].ts_ns = 2**70  # a transform's doing: msgpack cannot hold it
    events[2].ts_ns = "soon"  # type: ignore[assignment]
    got = unpack_events(pack_events(events))
    assert [e.raw for e in got] == ["a", "b", "c"]
    assert got[0].ts_ns == 1 and "repaired" not in got[0].meta
    assert all(type(e.ts_ns) is int and abs(e.ts_ns - time.time_ns()) < 60 * 10**9 for e in got[1:])
    assert got[1].meta["repaired"] == got[2].meta["repaired"] == ["time_out_of_range"]
