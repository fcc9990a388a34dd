"""Properties of the pure forward decoder: garbage never escapes as a crash; valid input round-trips."""

from __future__ import annotations

import gzip
import struct
from typing import Any

import msgpack
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipper.sources.forward.errors import ForwardDecodeError
from shipper.sources.forward.protocol import FrameDecoder, decode_message

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RESERVED = {"timestamp", "@timestamp", "time", "ts", "log", "message"}


def decode_all(data: bytes, max_frame_bytes: int = 4096) -> list[Any]:
    """Frame and decode ``data`` as the server does; only ForwardDecodeError may escape."""
    out = []
    for frame in FrameDecoder(max_frame_bytes).feed(data):
        out.append(decode_message(frame, "prop", max_bytes=max_frame_bytes))
    return out


def _maybe_decode(data: bytes) -> None:
    try:
        for msg in decode_all(data):
            for ev in msg.events:
                assert isinstance(orjson.loads(ev.raw), dict)
                orjson.dumps(ev.record)  # JSON-clean: str keys, valid text, no bytes or ext types
                assert type(ev.ts_ns) is int
    except ForwardDecodeError:
        pass


@FAST
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_only_raise_decode_errors(data: bytes) -> None:
    _maybe_decode(data)


ext = st.builds(msgpack.ExtType, st.sampled_from([0, 1, 42]), st.binary(max_size=12))
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | ext
)
anything = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5) | st.integers(-5, 5) | st.binary(max_size=5), children, max_size=4),
    max_leaves=20,
)
time_like = st.integers(-(2**63), 2**64 - 1) | st.floats() | ext | st.none() | st.text(max_size=3)
option = st.none() | st.dictionaries(
    st.sampled_from(["chunk", "size", "compressed", "x"]),
    st.text(max_size=8) | st.binary(max_size=8) | st.integers(-3, 3) | st.sampled_from(["gzip", "lz4"]),
    max_size=3,
)


def _frame_shapes() -> st.SearchStrategy[Any]:
    tag = st.text(max_size=8) | st.binary(max_size=8) | st.integers(-5, 5)
    entry = anything | st.tuples(time_like, anything).map(list)
    message = st.tuples(tag, time_like, anything, option).map(list)
    forward = st.tuples(tag, st.lists(entry, max_size=5), option).map(list)
    packed_payload = st.lists(entry, max_size=5).map(lambda es: b"".join(msgpack.packb(e) for e in es))
    packed = st.tuples(tag, packed_payload | st.binary(max_size=64), option).map(list)
    compressed = st.tuples(tag, packed_payload.map(gzip.compress), option).map(list)
    return message | forward | packed | compressed | anything


@FAST
@given(_frame_shapes(), st.integers(0, 40))
def test_arbitrary_structures_only_raise_decode_errors(obj: Any, cut: int) -> None:
    data = msgpack.packb(obj)
    _maybe_decode(data)
    # Truncated, and with a byte flipped.
    _maybe_decode(data[: max(0, len(data) - cut)])
    if data:
        i = cut % len(data)
        _maybe_decode(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :])


# --- round trip ------------------------------------------------------------------------------

keys = st.text(min_size=1, max_size=10).filter(lambda k: k not in RESERVED)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=10,
)
records = st.dictionaries(keys, json_values, max_size=6)
times = st.tuples(st.integers(1, 2**32 - 1), st.none() | st.integers(0, 999_999_999))


def _wire_time(t: tuple[int, int | None]) -> Any:
    seconds, nanos = t
    return seconds if nanos is None else msgpack.ExtType(0, struct.pack(">II", seconds, nanos))


def _ns(t: tuple[int, int | None]) -> int:
    return t[0] * 1_000_000_000 + (t[1] or 0)


@settings(max_examples=100, deadline=None)
@given(
    st.text(min_size=1, max_size=20),
    st.lists(st.tuples(times, records), min_size=1, max_size=8),
    st.sampled_from(["message", "forward", "packed", "packed_str", "gzip"]),
    st.none() | st.text(min_size=1, max_size=12),
)
def test_valid_messages_round_trip(
    tag: str, entries: list[tuple[tuple[int, int | None], dict[str, Any]]], mode: str, chunk: str | None
) -> None:
    option = {} if chunk is None else {"chunk": chunk}
    wire = [[_wire_time(t), rec] for t, rec in entries]
    if mode == "message":
        entries = entries[:1]
        data = msgpack.packb([tag, wire[0][0], wire[0][1], option])
    elif mode == "forward":
        data = msgpack.packb([tag, wire, option])
    else:
        stream = b"".join(msgpack.packb(w) for w in wire)
        if mode == "gzip":
            half = len(stream) // 2
            stream = gzip.compress(stream[:half]) + gzip.compress(stream[half:])
            option["compressed"] = "gzip"
        data = msgpack.packb([tag, stream, option], use_bin_type=mode != "packed_str")

    (msg,) = decode_all(data, max_frame_bytes=1 << 20)
    assert msg.tag == tag
    assert msg.chunk == chunk
    assert msg.skipped == []
    assert [e.record for e in msg.events] == [rec for _, rec in entries]
    assert [orjson.loads(e.raw) for e in msg.events] == [rec for _, rec in entries]
    assert [e.ts_ns for e in msg.events] == [_ns(t) for t, _ in entries]
    assert all(e.meta == {"source": "prop", "tag": tag} for e in msg.events)
