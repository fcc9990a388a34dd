"""The forward protocol decoder on its own: modes, times, records, limits, the handshake."""

from __future__ import annotations

import gzip
import hashlib
from typing import Any

import msgpack
import orjson
import pytest

from shipper.sources.forward.errors import (
    BAD_ENTRY,
    BAD_GZIP,
    BAD_RECORD,
    BAD_SHAPE,
    BAD_TIME,
    FRAME_TOO_LARGE,
    INVALID_MSGPACK,
    TRUNCATED,
    UNKNOWN_COMPRESSION,
    ForwardDecodeError,
)
from shipper.sources.forward.handshake import answer_ping, encode_helo
from shipper.sources.forward.protocol import ForwardMessage, FrameDecoder, decode_message, encode_ack, gunzip
from tests.factories import event_time

NOW = 1_234_567_890_000_000_000
SEC = 1_000_000_000


def frames(data: bytes, max_frame_bytes: int = 1 << 20) -> list[Any]:
    return list(FrameDecoder(max_frame_bytes).feed(data))


def decode(obj: Any, **kwargs: Any) -> ForwardMessage:
    """Pack ``obj``, unpack it as the server does, and decode it."""
    (frame,) = frames(msgpack.packb(obj, **kwargs))
    return decode_message(frame, "fwd", now_ns=lambda: NOW)


def packed(*entries: Any) -> bytes:
    return b"".join(msgpack.packb(e) for e in entries)


# --- modes -----------------------------------------------------------------------------------


def test_message_mode() -> None:
    msg = decode(["app.api", 1_700_000_000, {"level": "INFO", "n": 1}, {"chunk": "c1", "size": 1}])
    assert msg.tag == "app.api"
    assert msg.chunk == "c1"
    assert msg.skipped == []
    (ev,) = msg.events
    assert ev.record == {"level": "INFO", "n": 1}
    assert ev.raw == '{"level":"INFO","n":1}'
    assert ev.ts_ns == 1_700_000_000 * SEC
    assert ev.meta == {"source": "fwd", "tag": "app.api"}


def test_message_mode_without_option() -> None:
    msg = decode(["t", 5, {"a": 1}])
    assert msg.chunk is None
    assert [e.record for e in msg.events] == [{"a": 1}]


def test_forward_mode_carries_many_entries() -> None:
    entries = [[event_time(1_700_000_000 + i, i), {"i": i}] for i in range(50)]
    msg = decode(["t", entries, {"chunk": "abc"}])
    assert [e.record["i"] for e in msg.events] == list(range(50))
    assert msg.events[7].ts_ns == (1_700_000_007) * SEC + 7
    assert msg.chunk == "abc"


@pytest.mark.parametrize("as_str", [False, True], ids=["bin", "str"])
def test_packed_forward(as_str: bool) -> None:
    data = packed([1, {"a": "x"}], [event_time(2, 5), {"b": b"\xff"}], [3, {"c": [1, 2]}])
    # Older clients send the packed stream as msgpack ``str``; it must survive byte for byte.
    msg = decode(["t", data, {"chunk": "p1"}], use_bin_type=not as_str)
    assert [e.record for e in msg.events] == [{"a": "x"}, {"b": "\ufffd"}, {"c": [1, 2]}]
    assert [e.ts_ns for e in msg.events] == [SEC, 2 * SEC + 5, 3 * SEC]
    assert msg.chunk == "p1"


def test_compressed_packed_forward_with_several_gzip_members() -> None:
    one, two = packed([1, {"a": 1}], [2, {"a": 2}]), packed([3, {"a": 3}])
    data = gzip.compress(one) + gzip.compress(two) + gzip.compress(b"")
    msg = decode(["t", data, {"compressed": "gzip", "chunk": "z"}])
    assert [e.record["a"] for e in msg.events] == [1, 2, 3]


def test_compressed_text_means_uncompressed() -> None:
    msg = decode(["t", packed([1, {"a": 1}]), {"compressed": "text"}])
    assert len(msg.events) == 1


def test_unknown_compression() -> None:
    with pytest.raises(ForwardDecodeError) as err:
        decode(["t", packed([1, {"a": 1}]), {"compressed": "zstd"}])
    assert err.value.reason == UNKNOWN_COMPRESSION


# --- times -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "ns"),
    [
        (1_700_000_000, 1_700_000_000 * SEC),
        (event_time(1_700_000_000, 123_456_789), 1_700_000_000 * SEC + 123_456_789),
        (1.5, 1_500_000_000),
        (None, NOW),
        (0, NOW),
        (msgpack.Timestamp(5, 6), 5 * SEC + 6),
        ([event_time(9, 1), {"otlp": 1}], 9 * SEC + 1),  # Fluent Bit event format v2
    ],
)
def test_entry_times(t: Any, ns: int) -> None:
    (ev,) = decode(["t", [[t, {"a": 1}]]]).events
    assert ev.ts_ns == ns


@pytest.mark.parametrize(
    "t", ["2025", True, event_time(1, 1_000_000_000), msgpack.ExtType(0, b"1234"), msgpack.ExtType(5, b"x")]
)
def test_bad_time_skips_the_entry(t: Any) -> None:
    msg = decode(["t", [[t, {"a": 1}], [1, {"b": 2}]]])
    assert [e.record for e in msg.events] == [{"b": 2}]
    assert msg.skipped == [BAD_TIME]


def test_record_timestamp_wins_over_forward_time() -> None:
    (ev,) = decode(["t", 1, {"timestamp": "2025-01-01T00:00:00.123Z", "message": "hi"}]).events
    assert ev.ts_ns == 1_735_689_600_123_000_000


# --- records ---------------------------------------------------------------------------------


def test_bad_entries_are_skipped_and_the_rest_delivered() -> None:
    entries = [[1, {"ok": 1}], "junk", [1, "not a map"], [1, {"ok": 2}, "extra"], [2, {"ok": 3}]]
    msg = decode(["t", entries, {"chunk": "k"}])
    assert [e.record["ok"] for e in msg.events] == [1, 3]
    assert sorted(msg.skipped) == sorted([BAD_ENTRY, BAD_RECORD, BAD_ENTRY])
    assert msg.chunk == "k"


def test_message_mode_with_a_bad_record_is_an_empty_message() -> None:
    msg = decode(["t", 1, ["not", "a", "map"], {"chunk": "k"}])
    assert msg.events == []
    assert msg.skipped == [BAD_RECORD]
    assert msg.chunk == "k"


def test_record_values_and_keys_become_text() -> None:
    record = {
        b"bin_key": b"caf\xc3\xa9",
        "bad": b"\xff\xfe",
        1: "int key",
        "nested": {"list": [b"x", {"deep": b"y"}], 2: None},
        "when": event_time(3, 4),
        "ext": msgpack.ExtType(7, b"\x01\x02"),
    }
    (ev,) = decode(["t", 1, record]).events
    assert ev.record == {
        "bin_key": "café",
        "bad": "\ufffd\ufffd",
        "1": "int key",
        "nested": {"list": ["x", {"deep": "y"}], "2": None},
        "when": 3 * SEC + 4,
        "ext": "ext(7):0102",
    }
    assert orjson.loads(ev.raw) == ev.record


def test_invalid_utf8_in_str_becomes_replacement_characters() -> None:
    # msgpack str 0xa3 + 3 bytes, the last not UTF-8.
    data = b"\x93\xa1t\x01\x81\xa1k\xa3ab\xff"
    (frame,) = frames(data)
    (ev,) = decode_message(frame, "fwd").events
    assert ev.record == {"k": "ab\ufffd"}
    assert ev.raw == '{"k":"ab\ufffd"}'


def test_too_deep_record_is_skipped() -> None:
    deep: Any = b"leaf"
    for _ in range(300):
        deep = {"d": deep}
    msg = decode(["t", [[1, deep], [1, {"ok": 1}]]])
    assert [e.record for e in msg.events] == [{"ok": 1}]
    assert msg.skipped == [BAD_RECORD]


def test_json_in_log_key_is_merged() -> None:
    payload = '{"timestamp":"2025-01-01T00:00:00.500Z","level":"ERROR","message":"boom","source":"app"}'
    record = {"container_id": "abc", "source": "stderr", "log": payload}
    (ev,) = decode(["docker.abc", 1, record]).events
    assert ev.record == {
        "container_id": "abc",
        "source": "app",
        "timestamp": "2025-01-01T00:00:00.500Z",
        "level": "ERROR",
        "message": "boom",
    }
    assert ev.raw == payload
    assert ev.ts_ns == 1_735_689_600_500_000_000


def test_json_in_message_key_is_merged_but_plain_text_is_kept() -> None:
    (ev,) = decode(["t", 1, {"message": '{"a": 1}', "host": "h"}]).events
    assert ev.record == {"host": "h", "a": 1}
    assert ev.raw == '{"a": 1}'
    for text in ["{not json", "plain", '["a list"]']:
        (ev,) = decode(["t", 1, {"message": text}]).events
        assert ev.record == {"message": text}
        assert ev.raw == orjson.dumps({"message": text}).decode()


def test_our_own_schema_record_is_the_record() -> None:
    record = {
        "timestamp": "2025-01-01T00:00:00.123Z",
        "level": "INFO",
        "logger": "app",
        "message": "hello",
        "request_id": "r1",
        "service": "backend",
    }
    (ev,) = decode(["backend", event_time(1), record]).events
    assert ev.record == record
    assert orjson.loads(ev.raw) == record
    assert ev.ts_ns == 1_735_689_600_123_000_000


# --- shapes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        {"not": "an array"},
        "string",
        ["only-tag"],
        ["t", 1, {"a": 1}, {}, "five"],
        [1, 1, {"a": 1}],
        [None, [[1, {}]]],
        ["t", [[1, {}]], "option not a map"],
        ["t", [[1, {}]], {}, {}],
        ["t", 1, {"a": 1}, ["option"]],
        ["t", 1],
        ["t", 1, {"a": 1}, {"chunk": {"nested": 1}}],
    ],
)
def test_wrong_shapes(obj: Any) -> None:
    with pytest.raises(ForwardDecodeError) as err:
        decode(obj)
    assert err.value.reason == BAD_SHAPE


def test_corrupt_packed_entries() -> None:
    with pytest.raises(ForwardDecodeError) as err:
        decode(["t", b"\xc1\x00"])
    assert err.value.reason == INVALID_MSGPACK
    with pytest.raises(ForwardDecodeError) as err:
        decode(["t", packed([1, {"a": 1}])[:-1]])
    assert err.value.reason == TRUNCATED


# --- gzip ------------------------------------------------------------------------------------


def test_gunzip_refuses_a_bomb() -> None:
    bomb = gzip.compress(b"\x00" * 5_000_000)
    assert len(bomb) < 10_000
    with pytest.raises(ForwardDecodeError) as err:
        gunzip(bomb, 1_000_000)
    assert err.value.reason == FRAME_TOO_LARGE
    assert gunzip(gzip.compress(b"x" * 1000), 1000) == b"x" * 1000
    with pytest.raises(ForwardDecodeError):
        gunzip(gzip.compress(b"x" * 1000), 999)


@pytest.mark.parametrize(
    "data", [gzip.compress(b"abcdef" * 100)[:-10], b"not gzip at all", gzip.compress(b"a") + b"\0"]
)
def test_gunzip_rejects_garbage(data: bytes) -> None:
    with pytest.raises(ForwardDecodeError) as err:
        gunzip(data, 1 << 20)
    assert err.value.reason == BAD_GZIP


# --- framing ---------------------------------------------------------------------------------


def test_frames_split_anywhere() -> None:
    objs = [["t", i, {"i": i, "pad": "x" * i}] for i in range(40)]
    data = b"".join(msgpack.packb(o) for o in objs)
    dec = FrameDecoder(4096)
    got: list[Any] = []
    for i in range(len(data)):
        got += dec.feed(data[i : i + 1])
    assert got == objs
    assert dec.pending_bytes == 0
    list(dec.feed(data[:5]))
    assert dec.pending_bytes == 5


def test_frame_size_limit_is_exact() -> None:
    frame = msgpack.packb(["t", 1, {"a": "x" * 2000}])
    assert frames(frame, len(frame)) == [msgpack.unpackb(frame)]
    with pytest.raises(ForwardDecodeError) as err:
        frames(frame, len(frame) - 1)
    assert err.value.reason == FRAME_TOO_LARGE
    # An incomplete frame already over the limit is refused without waiting for the rest.
    dec = FrameDecoder(1024)
    with pytest.raises(ForwardDecodeError) as err:
        list(dec.feed(frame[:1500]))
    assert err.value.reason == FRAME_TOO_LARGE


def test_a_huge_feed_is_framed_in_bounded_slices() -> None:
    objs = [["t", i, {"pad": "y" * 1000}] for i in range(500)]
    data = b"".join(msgpack.packb(o) for o in objs)
    assert frames(data, 2048) == objs


def test_good_frames_before_garbage_are_yielded() -> None:
    dec = FrameDecoder()
    it = dec.feed(msgpack.packb(["t", 1, {"a": 1}]) + b"\xc1")
    assert next(it) == ["t", 1, {"a": 1}]
    with pytest.raises(ForwardDecodeError) as err:
        next(it)
    assert err.value.reason == INVALID_MSGPACK


def test_encode_ack_echoes_the_chunk() -> None:
    for chunk in ["YWJj", b"\x00\x01", "caf\udce9"]:
        assert msgpack.unpackb(encode_ack(chunk), raw=False, unicode_errors="surrogateescape") == {
            "ack": chunk
        }


# --- handshake -------------------------------------------------------------------------------


def _ping(nonce: bytes, key: str, hostname: str = "client", salt: bytes = b"salty") -> list[Any]:
    digest = hashlib.sha512(salt + hostname.encode() + nonce + key.encode()).hexdigest()
    return ["PING", hostname, salt, digest, "", ""]


def test_helo() -> None:
    assert msgpack.unpackb(encode_helo(b"n" * 16, True)) == [
        "HELO",
        {"nonce": b"n" * 16, "auth": "", "keepalive": True},
    ]


def test_ping_with_the_right_key() -> None:
    nonce = b"0123456789abcdef"
    pong = answer_ping(_ping(nonce, "s3cret"), nonce, "s3cret", "server")
    assert pong.ok
    expected = hashlib.sha512(b"salty" + b"server" + nonce + b"s3cret").hexdigest()
    assert msgpack.unpackb(pong.reply) == ["PONG", True, "", "server", expected]


@pytest.mark.parametrize(
    "ping",
    [
        _ping(b"0123456789abcdef", "wrong"),
        _ping(b"another nonce...", "s3cret"),
        ["PING", "client", b"salt", "digest"],
        ["HELLO", "a", "b", "c", "d", "e"],
        ["PING", 1, 2, 3, 4, 5],
        {"PING": 1},
    ],
)
def test_ping_refused(ping: Any) -> None:
    pong = answer_ping(ping, b"0123456789abcdef", "s3cret", "server")
    assert not pong.ok
    reply = msgpack.unpackb(pong.reply)
    assert reply[:2] == ["PONG", False]
    assert reply[2] == pong.reason
