"""One hostile message costs at most itself: counted, never another peer's connection or the process."""

from __future__ import annotations

import asyncio
import gzip
import struct
import tracemalloc
from typing import Any

import msgpack
import pytest

from shipper.sources.forward import FrameDecoder, decode_message
from shipper.sources.forward.errors import ForwardDecodeError
from tests.shipper.sources.forward._support import Peer, input_errors, serving

pytestmark = pytest.mark.anyio


def _deep(depth: int) -> dict[str, Any]:
    record: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        record = {"k": record}
    return record


def _tiny_entries(n: int) -> bytes:
    """A Forward message whose entries array holds ``n`` entries ``[1, {}]`` (3 bytes each)."""
    return b"\x92\xa1t\xdd" + struct.pack(">I", n) + b"\x92\x01\x80" * n


def _nested_tiny_maps(arrays: int, per_array: int) -> bytes:
    """A Message-mode record holding ``arrays`` arrays of ``per_array`` empty maps (1 byte each)."""
    body = b"\xdd" + struct.pack(">I", per_array) + b"\x80" * per_array
    record = b"\xdf" + struct.pack(">I", arrays) + b"".join(
        msgpack.packb(f"a{i}") + body for i in range(arrays))
    return b"\x93\xa1t\x01" + record


def _packed_tiny_entries(n: int) -> bytes:
    return msgpack.packb(["t", gzip.compress(b"\x92\x01\x80" * n), {"compressed": "gzip", "chunk": "p"}])


# Each case: frame bytes, and the reason it is counted under (the message is refused or its entry
# skipped); a good message on another connection is served meanwhile.
CASES: dict[str, tuple[bytes, str]] = {
    "deep record": (msgpack.packb(["t", [[1, _deep(300)], [1, {"ok": 1}]], {"chunk": "d"}]), "bad_record"),
    "nesting past msgpack's stack": (b"\x93\xa1t\x01" + b"\x81\xa1k" * 5000 + b"\x01", "invalid_msgpack"),
    "unhashable map key": (b"\x93\xa1t\x01\x81\x91\x01\x01", "invalid_msgpack"),
    "garbage EventTime": (msgpack.packb(["t", [[msgpack.ExtType(0, b"\xff" * 8), {}],
                                              [msgpack.ExtType(0, b"abc"), {}], [1, {"ok": 1}]],
                                         {"chunk": "e"}]), "bad_time"),
    "garbage msgpack timestamp": (b"\x93\xa1t\xd4\xff\x01\x80", "invalid_msgpack"),
    "absurd chunk": (msgpack.packb(["t", [[1, {}]], {"chunk": "c" * 4_000_000}]), "bad_shape"),
    "millions of tiny entries": (_tiny_entries(4_000_000), "frame_too_large"),
    "millions of tiny maps in arrays": (_nested_tiny_maps(8, 500_000), "frame_too_large"),
    "millions of packed tiny entries": (_packed_tiny_entries(4_000_000), "frame_too_large"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_hostile_message_costs_only_itself(case: str) -> None:
    frame, reason = CASES[case]

    async with asyncio.timeout(30):
        async with serving() as (source, sink):
            other = await Peer.connect(source, "127.0.0.2")
            hostile = await Peer.connect(source)
            tracemalloc.start()
            try:
                await hostile.send(frame)
                await other.send(["t", 1, {"other": True}, {"chunk": "o"}])
                assert await other.recv(timeout=10) == {"ack": "o"}
                if case in ("deep record", "garbage EventTime"):  # a bad entry is skipped, the rest acked
                    assert "ack" in await hostile.recv(timeout=10)
                    assert any(e.record == {"ok": 1} for e in sink.events)
                else:  # the message is refused: its own connection is closed, unacknowledged
                    with pytest.raises((EOFError, ConnectionResetError)):
                        await hostile.recv(timeout=10)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert input_errors(source, reason) >= 1
            # Bounded by the frame's bytes and max_frame_values (about 70 bytes per value), not
            # by what the values would become: 4 million tiny entries took 2.3 GiB and minutes.
            assert peak < 4 * len(frame) + 128 * 1024 * 1024, f"{peak / 2**20:.0f} MiB"
            assert any(e.record == {"other": True} for e in sink.events)
            await other.send(["t", 1, {"again": True}, {"chunk": "o2"}])
            assert await other.recv() == {"ack": "o2"}
            await other.close()


def test_non_string_map_keys_become_text() -> None:
    record = {1: "int", None: "nil", 2.5: "float", b"\xff": "bytes", False: "bool", msgpack.ExtType(5, b"x"): "ext"}
    (frame,) = FrameDecoder().feed(msgpack.packb(["t", 1, record]))
    (event,) = decode_message(frame, "s").events
    assert set(event.record.values()) == set(record.values())
    assert all(isinstance(k, str) for k in event.record)


def test_value_budget_is_exact_enough_for_real_traffic() -> None:
    # A realistic 20,000-entry Forward message is far under the default budget.
    rec = {"timestamp": "2025-01-01T00:00:00.123Z", "level": "INFO", "message": "GET /x 200",
           "request_id": "2b9c6c1e", "http": {"method": "GET", "status": 200}}
    data = msgpack.packb(["t", [[1_700_000_000, rec] for _ in range(20_000)], {"chunk": "big"}])
    (frame,) = FrameDecoder().feed(data)
    assert len(decode_message(frame, "s").events) == 20_000
    # The same message with a budget just under its value count is refused, with the reason.
    with pytest.raises(ForwardDecodeError) as err:
        list(FrameDecoder(max_values=200_000).feed(data))
    assert err.value.reason == "frame_too_large"


def test_an_unfinished_frame_holds_no_objects() -> None:
    # 1,000 nested array headers claiming a million items each: 5 KB that msgpack would expand
    # into ~76 MB of preallocated lists while waiting for the rest.
    dec = FrameDecoder()
    tracemalloc.start()
    try:
        assert list(dec.feed(b"\x92\xa1t" + b"\xdd\x00\x10\x00\x00" * 1000)) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert dec.pending_bytes == 5003
    assert peak < 2 * 1024 * 1024, f"{peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("shape", ["one long string", "many small values"])
def test_held_bytes_covers_what_an_unfinished_frame_really_holds(shape: str) -> None:
    # held_bytes is what the source's max_buffered_bytes budget counts; it must not under-report.
    if shape == "one long string":
        data = msgpack.packb(["t", [[1, {"m": "x" * (900 * 1024)}]]])
    else:
        data = msgpack.packb(["t", [[1, {"m": "x" * 20, "i": i}] for i in range(30_000)]])
    dec = FrameDecoder(1024 * 1024)
    tracemalloc.start()
    try:
        for start in range(0, 900 * 1024, 64 * 1024):
            assert list(dec.feed(data[start : min(start + 64 * 1024, 900 * 1024)])) == []
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert dec.pending_bytes == 900 * 1024
    # A few KiB of slack for the decoder's own small objects.
    assert held <= dec.held_bytes + 16 * 1024, f"{held} bytes held, {dec.held_bytes} accounted"
