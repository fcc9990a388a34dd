"""The forward source over real sockets: fluent-logger, raw frames, acks, handshake, bad input."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import random
import socket
import time
from typing import Any

import msgpack
import pytest
from fluent.sender import FluentSender

from shipper.sources.forward import ForwardSource, ForwardSourceConfig
from tests.factories import event_time
from tests.shipper.sources.forward._support import Client, Collector, input_errors, metric, serving, still_serves, until

pytestmark = pytest.mark.anyio


# --- fluent-logger ---------------------------------------------------------------------------


@pytest.mark.parametrize("nanosecond_precision", [False, True])
async def test_fluent_logger_client(nanosecond_precision: bool) -> None:
    record = {
        "timestamp": "2025-01-01T00:00:00.123Z",
        "level": "INFO",
        "logger": "app.api",
        "message": "hello",
        "request_id": "r-1",
    }

    def send(port: int) -> None:
        sender = FluentSender(
            "backend", host="127.0.0.1", port=port, nanosecond_precision=nanosecond_precision
        )
        try:
            assert sender.emit("api", record), sender.last_error
            assert sender.emit_with_time("api", 1_700_000_000.25, {"n": 1}), sender.last_error
            assert sender.emit("api", {"bytes": b"\xffok"}), sender.last_error
        finally:
            sender.close()

    async with asyncio.timeout(10):
        async with serving() as (source, sink):
            await asyncio.to_thread(send, source.port)
            await until(lambda: len(sink.events) == 3)
            first, second, third = sink.events
            assert first.record == record
            assert first.ts_ns == 1_735_689_600_123_000_000
            assert first.meta == {"source": source.name, "tag": "backend.api"}
            assert second.record == {"n": 1}
            # A float time is sent as a float without nanosecond_precision, as EventTime with it.
            assert second.ts_ns == 1_700_000_000_250_000_000
            assert third.record == {"bytes": "\ufffdok"}
            assert abs(third.ts_ns - time.time_ns()) < 60 * 10**9
            assert metric("ecvi_shipper_events_received_total", source) == 3
            assert metric("ecvi_shipper_bytes_received_total", source) > 50


async def test_many_events_from_fluent_logger_are_batched() -> None:
    def send(port: int) -> None:
        sender = FluentSender("bulk", host="127.0.0.1", port=port, nanosecond_precision=True)
        try:
            for i in range(2000):
                assert sender.emit(None, {"i": i}), sender.last_error
        finally:
            sender.close()

    async with asyncio.timeout(10):
        async with serving() as (source, sink):
            await asyncio.to_thread(send, source.port)
            await until(lambda: len(sink.events) == 2000)
            assert [e.record["i"] for e in sink.events] == list(range(2000))
            # Message-mode frames arriving together are delivered together.
            assert len(sink.batches) < 2000


# --- the four modes over a socket ------------------------------------------------------------


async def test_all_modes_over_one_connection() -> None:
    entries = [[event_time(1_700_000_000, 5), {"i": 1}], [1_700_000_001, {"i": 2}]]
    stream = b"".join(msgpack.packb(e) for e in entries)

    async with asyncio.timeout(10):
        async with serving() as (source, sink):
            client = await Client.connect(source)
            await client.send(["m", event_time(1_700_000_000, 7), {"i": 0}, {"chunk": "c0"}])
            assert await client.recv() == {"ack": "c0"}
            await client.send(["f", entries, {"chunk": "c1", "size": 2}])
            assert await client.recv() == {"ack": "c1"}
            await client.send(["p", stream, {"chunk": "c2"}])
            assert await client.recv() == {"ack": "c2"}
            gz = gzip.compress(stream[:7]) + gzip.compress(stream[7:])
            await client.send(["z", gz, {"chunk": "c3", "compressed": "gzip"}])
            assert await client.recv() == {"ack": "c3"}
            await client.close()
            assert [len(b) for b in sink.batches] == [1, 2, 2, 2]
            assert [(e.meta["tag"], e.record["i"]) for e in sink.events] == [
                ("m", 0), ("f", 1), ("f", 2), ("p", 1), ("p", 2), ("z", 1), ("z", 2)
            ]
            assert sink.events[0].ts_ns == 1_700_000_000_000_000_007
            assert sink.events[1].ts_ns == 1_700_000_000_000_000_005


async def test_without_chunk_nothing_is_sent_back() -> None:
    async with asyncio.timeout(10):
        async with serving() as (source, sink):
            client = await Client.connect(source)
            await client.send(["t", [[1, {"a": 1}], [2, {"a": 2}]]])
            await until(lambda: len(sink.events) == 2)
            assert await client.nothing_within(0.1)
            await client.close()


# --- acknowledgements ------------------------------------------------------------------------


async def test_ack_only_after_deliver_returns() -> None:
    async with asyncio.timeout(10):
        async with serving() as (source, sink):
            sink.gate = asyncio.Event()
            client = await Client.connect(source)
            await client.send(["t", [[1, {"a": 1}], [2, {"a": 2}]], {"chunk": "wait-for-me"}])
            await until(lambda: sink.entered == 1)
            assert await client.nothing_within(0.2)
            assert sink.events == []
            sink.gate.set()
            assert await client.recv() == {"ack": "wait-for-me"}
            assert len(sink.events) == 2
            await client.close()


async def test_binary_chunk_is_echoed() -> None:
    async with asyncio.timeout(10):
        async with serving() as (source, _sink):
            client = await Client.connect(source)
            await client.send(["t", 1, {"a": 1}, {"chunk": b"\x00\xffbin"}])
            assert await client.recv() == {"ack": b"\x00\xffbin"}
            await client.close()


async def test_deliver_raising_means_no_ack_and_close() -> None:
    async with asyncio.timeout(10):
        async with serving() as (source, sink):
            sink.error = RuntimeError("buffer is broken")
            client = await Client.connect(source)
            await client.send(["t", [[1, {"a": 1}]], {"chunk": "never"}])
            assert await client.closed_by_server()
            assert metric("ecvi_shipper_events_received_total", source) == 0
            sink.error = None
            await still_serves(source, sink)


async def test_good_frame_before_garbage_is_delivered_and_acked() -> None:
    async with asyncio.timeout(10):
        async with serving() as (source, sink):
            client = await Client.connect(source)
            await client.send(msgpack.packb(["t", 1, {"a": 1}, {"chunk": "good"}]) + b"\xc1\xc1")
            assert await client.recv() == {"ack": "good"}
            assert await client.closed_by_server()
            assert [e.record for e in sink.events] == [{"a": 1}]
            assert input_errors(source, "invalid_msgpack") == 1


async def test_bad_entries_are_counted_and_the_rest_acked() -> None:
    async with asyncio.timeout(10):
        async with serving() as (source, sink):
            client = await Client.connect(source)
            entries = [[1, {"a": 1}], "junk", [1, "not a map"], ["soon", {"b": 1}], [2, {"a": 2}]]
            await client.send(["t", entries, {"chunk": "partial"}])
            assert await client.recv() == {"ack": "partial"}
            assert [e.record for e in sink.events] == [{"a": 1}, {"a": 2}]
            assert input_errors(source, "bad_entry") == 1
            assert input_errors(source, "bad_record") == 1
            assert input_errors(source, "bad_time") == 1
            # The connection stays open.
            await client.send(["t", 3, {"a": 3}, {"chunk": "next"}])
            assert await client.recv() == {"ack": "next"}
            await client.close()


# --- handshake -------------------------------------------------------------------------------


def _ping(helo: Any, key: str, hostname: str = "client-host", salt: bytes = b"0123456789abcdef") -> list[Any]:
    nonce = helo[1]["nonce"]
    digest = hashlib.sha512(salt + hostname.encode() + nonce + key.encode()).hexdigest()
    return ["PING", hostname, salt, digest, "", ""]


async def test_shared_key_handshake() -> None:
    async with asyncio.timeout(10):
        async with serving(shared_key="s3cret", self_hostname="shipper-1") as (source, sink):
            client = await Client.connect(source)
            helo = await client.recv()
            assert helo[0] == "HELO"
            assert helo[1]["auth"] == "" and helo[1]["keepalive"] is True
            nonce = helo[1]["nonce"]
            assert isinstance(nonce, bytes) and len(nonce) == 16
            salt = b"fedcba9876543210"
            await client.send(_ping(helo, "s3cret", salt=salt))
            pong = await client.recv()
            expected = hashlib.sha512(salt + b"shipper-1" + nonce + b"s3cret").hexdigest()
            assert pong == ["PONG", True, "", "shipper-1", expected]
            await client.send(["t", 1, {"a": 1}, {"chunk": "authed"}])
            assert await client.recv() == {"ack": "authed"}
            assert [e.record for e in sink.events] == [{"a": 1}]
            await client.close()

            # Each connection gets its own nonce.
            other = await Client.connect(source)
            assert (await other.recv())[1]["nonce"] != nonce
            await other.close()


@pytest.mark.parametrize("first", ["wrong key", "data instead of ping"])
async def test_shared_key_refused(first: str) -> None:
    async with asyncio.timeout(10):
        async with serving(shared_key="s3cret") as (source, sink):
            client = await Client.connect(source)
            helo = await client.recv()
            if first == "wrong key":
                await client.send(_ping(helo, "guess"))
            else:
                await client.send(["t", 1, {"a": 1}, {"chunk": "sneaky"}])
            pong = await client.recv()
            assert pong[:2] == ["PONG", False]
            assert await client.closed_by_server()
            assert sink.events == []
            assert input_errors(source, "auth_failed") == 1


# --- bad input -------------------------------------------------------------------------------


async def test_random_bytes() -> None:
    async with asyncio.timeout(10):
        async with serving(max_frame_bytes=4096) as (source, sink):
            for seed in range(3):
                client = await Client.connect(source)
                await client.send(b"\xc1" + random.Random(seed).randbytes(8192))
                assert await client.closed_by_server()
            total = sum(
                input_errors(source, r) for r in ("invalid_msgpack", "bad_shape", "frame_too_large", "bad_record")
            )
            assert total == 3
            await still_serves(source, sink)


async def test_truncated_frame_then_close() -> None:
    async with asyncio.timeout(10):
        async with serving() as (source, sink):
            client = await Client.connect(source)
            frame = msgpack.packb(["t", [[1, {"a": "x" * 100}]], {"chunk": "cut"}])
            await client.send(frame[:-10])
            await client.close()
            await until(lambda: input_errors(source, "truncated") == 1)
            assert sink.events == []
            await still_serves(source, sink)


async def test_oversized_frame() -> None:
    async with asyncio.timeout(10):
        async with serving(max_frame_bytes=1024) as (source, sink):
            client = await Client.connect(source)
            await client.send(["t", 1, {"big": "x" * 5000}, {"chunk": "big"}])
            assert await client.closed_by_server()
            assert input_errors(source, "frame_too_large") == 1
            # A compressed payload that inflates past the limit is refused the same way.
            client = await Client.connect(source)
            bomb = gzip.compress(msgpack.packb([1, {"z": "0" * 100_000}]))
            await client.send(["t", bomb, {"compressed": "gzip", "chunk": "bomb"}])
            assert await client.closed_by_server()
            assert input_errors(source, "frame_too_large") == 2
            assert sink.events == []
            await still_serves(source, sink)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ({"not": "an array"}, "bad_shape"),
        (["tag-only"], "bad_shape"),
        ([42, 1, {"a": 1}], "bad_shape"),
        (["t", [[1, {}]], "option"], "bad_shape"),
        (["t", b"\x92\x01\x81", {"chunk": "x"}], "truncated"),
        (["t", b"entries", {"compressed": "lz4"}], "unknown_compression"),
        (["t", b"not gzip", {"compressed": "gzip"}], "bad_gzip"),
    ],
)
async def test_wrong_shapes_close_the_connection(frame: Any, reason: str) -> None:
    async with asyncio.timeout(10):
        async with serving() as (source, sink):
            client = await Client.connect(source)
            await client.send(frame)
            assert await client.closed_by_server()
            assert input_errors(source, reason) == 1
            await still_serves(source, sink)


async def test_bad_connection_does_not_disturb_others() -> None:
    async with asyncio.timeout(10):
        async with serving() as (source, sink):
            good = await Client.connect(source)
            bad = await Client.connect(source)
            await good.send(["t", 1, {"n": 1}, {"chunk": "g1"}])
            assert await good.recv() == {"ack": "g1"}
            await bad.send(b"\xc1")
            assert await bad.closed_by_server()
            await good.send(["t", 1, {"n": 2}, {"chunk": "g2"}])
            assert await good.recv() == {"ack": "g2"}
            assert [e.record["n"] for e in sink.events] == [1, 2]
            await good.close()


# --- connections and shutdown ----------------------------------------------------------------


async def test_connection_gauge_and_limit() -> None:
    async with asyncio.timeout(10):
        async with serving(max_connections=1) as (source, sink):
            gauge = "ecvi_shipper_forward_connections"
            first = await Client.connect(source)
            await first.send(["t", 1, {"a": 1}, {"chunk": "1"}])
            assert await first.recv() == {"ack": "1"}
            assert metric(gauge, source) == 1
            second = await Client.connect(source)
            assert await second.closed_by_server()
            await first.close()
            await until(lambda: metric(gauge, source) == 0)
            await still_serves(source, sink)


async def test_idle_connections_are_closed() -> None:
    async with asyncio.timeout(10):
        async with serving(idle_timeout_secs=0.1) as (source, _sink):
            client = await Client.connect(source)
            assert await client.closed_by_server(timeout=2)


async def test_stop_waits_for_deliveries_in_flight() -> None:
    async with asyncio.timeout(10):
        async with serving() as (source, sink):
            sink.gate = asyncio.Event()
            busy = await Client.connect(source)
            idle = await Client.connect(source)
            await busy.send(["t", 1, {"a": 1}, {"chunk": "in-flight"}])
            await until(lambda: sink.entered == 1)
            stopping = asyncio.create_task(source.stop())
            assert await idle.closed_by_server()
            await asyncio.sleep(0.05)
            assert not stopping.done()
            sink.gate.set()
            assert await busy.recv() == {"ack": "in-flight"}
            assert await busy.closed_by_server()
            await stopping
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", source.port)


async def test_stop_cancels_deliveries_after_the_timeout_without_acking() -> None:
    async with asyncio.timeout(10):
        async with serving(shutdown_timeout_secs=0.1) as (source, sink):
            sink.gate = asyncio.Event()
            client = await Client.connect(source)
            await client.send(["t", 1, {"a": 1}, {"chunk": "lost"}])
            await until(lambda: sink.entered == 1)
            await source.stop()
            assert await client.closed_by_server()
            assert sink.events == []


async def test_ipv6_address() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")

    async with asyncio.timeout(10):
        sink = Collector()
        source = ForwardSource("fwd-v6", ForwardSourceConfig(type="forward", address="[::1]:0"), sink)
        await source.start()
        try:
            reader, writer = await asyncio.open_connection("::1", source.port)
            client = Client(reader, writer)
            await client.send(["t", 1, {"v6": True}, {"chunk": "six"}])
            assert await client.recv() == {"ack": "six"}
            await client.close()
        finally:
            await source.stop()
