"""Hostile peers against the forward source: slots only after auth, deadlines, per-peer caps."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest

from shipper.sources.forward import ForwardSourceConfig
from tests.shipper.sources.forward._support import Peer, input_errors, refused, serving, until

pytestmark = pytest.mark.anyio
KEY = "s3cret"


def test_defaults_bound_every_connection_in_time_and_number() -> None:
    cfg = ForwardSourceConfig(type="forward")
    assert cfg.handshake_timeout_secs is not None and cfg.handshake_timeout_secs <= 10
    assert cfg.idle_timeout_secs is not None and 60 <= cfg.idle_timeout_secs <= 300
    assert cfg.max_connections_per_peer == 64
    assert cfg.max_connections_per_peer <= cfg.max_connections


async def test_unauthenticated_sockets_do_not_delay_an_authenticated_client() -> None:
    async with asyncio.timeout(15):
        async with serving(shared_key=KEY) as (source, sink):
            # One byte each, then silence: before authenticating, none may hold a decoder slot.
            lurkers = [await Peer.connect(source) for _ in range(64)]
            for lurker in lurkers:
                await lurker.recv()  # HELO
                await lurker.send(b"\x96")
            await asyncio.sleep(0.05)
            client = await Peer.connect(source, "127.0.0.2")
            started = time.monotonic()
            pong = await client.handshake(KEY)
            assert pong[:2] == ["PONG", True]
            await client.send(["t", 1, {"n": 1}, {"chunk": "c1"}])
            assert await client.recv(timeout=2) == {"ack": "c1"}
            assert time.monotonic() - started < 1.0
            assert [e.record for e in sink.events] == [{"n": 1}]
            for peer in [client, *lurkers]:
                await peer.close()


@pytest.mark.parametrize("sent", [b"", b"\x96\xa4PI"])
async def test_handshake_deadline(sent: bytes) -> None:
    async with asyncio.timeout(15):
        async with serving(shared_key=KEY, handshake_timeout_secs=0.3) as (source, _sink):
            silent = await Peer.connect(source)
            assert (await silent.recv())[0] == "HELO"
            await silent.send(sent)
            started = time.monotonic()
            assert await silent.closed_within(3)
            assert 0.1 < time.monotonic() - started < 2.0
            await until(lambda: refused(source, "handshake_timeout") == 1)
            # A client that answers in time is served.
            client = await Peer.connect(source)
            assert (await client.handshake(KEY))[:2] == ["PONG", True]
            await client.send(["t", 1, {"ok": True}, {"chunk": "ok"}])
            assert await client.recv() == {"ack": "ok"}
            await client.close()


async def test_oversized_ping_is_refused_without_a_decoder() -> None:
    async with asyncio.timeout(15):
        async with serving(shared_key=KEY) as (source, _sink):
            peer = await Peer.connect(source)
            await peer.recv()
            await peer.send(b"\x96\xdb\x00\x10\x00\x00" + b"h" * 8192)  # a 1 MiB hostname
            assert await peer.closed_within(2)
            await until(lambda: refused(source, "auth_failed") == 1)
            assert input_errors(source, "auth_failed") == 1


async def test_bad_shared_key_is_counted_as_refused() -> None:
    async with asyncio.timeout(15):
        async with serving(shared_key=KEY) as (source, _sink):
            peer = await Peer.connect(source)
            assert (await peer.handshake("guess"))[:2] == ["PONG", False]
            assert await peer.closed_within(2)
            await until(lambda: refused(source, "auth_failed") == 1)


async def test_data_pipelined_after_the_ping_is_served() -> None:
    async with asyncio.timeout(15):
        async with serving(shared_key=KEY) as (source, sink):
            peer = await Peer.connect(source)
            helo = await peer.recv()
            import hashlib

            import msgpack

            salt = b"s" * 16
            digest = hashlib.sha512(salt + b"h" + helo[1]["nonce"] + KEY.encode()).hexdigest()
            ping = msgpack.packb(["PING", "h", salt, digest, "", ""])
            await peer.send(ping + msgpack.packb(["t", 1, {"n": 7}, {"chunk": "p"}]))
            assert (await peer.recv())[:2] == ["PONG", True]
            assert await peer.recv() == {"ack": "p"}
            assert [e.record for e in sink.events] == [{"n": 7}]
            await peer.close()


async def test_idle_connection_is_closed_after_the_idle_timeout() -> None:
    async with asyncio.timeout(15):
        async with serving(idle_timeout_secs=0.3) as (source, _sink):
            peer = await Peer.connect(source)
            await peer.send(["t", 1, {"n": 1}, {"chunk": "a"}])
            assert await peer.recv() == {"ack": "a"}
            started = time.monotonic()
            assert await peer.closed_within(3)
            assert 0.2 < time.monotonic() - started < 2.0
            await until(lambda: refused(source, "idle_timeout") == 1)


async def test_a_frame_trickled_byte_by_byte_does_not_outlive_the_idle_timeout() -> None:
    async with asyncio.timeout(15):
        async with serving(idle_timeout_secs=0.5, frame_timeout_secs=5) as (source, _sink):
            peer = await Peer.connect(source)
            started = time.monotonic()
            closed = False
            for _ in range(40):  # a byte every 0.05 s: never stalls for frame_timeout_secs
                try:
                    await peer.send(b"\xdb\x00\x00\x10\x00"[:1] if _ == 0 else b"x")
                except ConnectionError:
                    closed = True
                    break
                if peer.reader.at_eof() or await peer.closed_within(0.05):
                    closed = True
                    break
            assert closed, "still open after 2 s of trickling"
            assert time.monotonic() - started < 1.5
            await until(lambda: refused(source, "frame_timeout") == 1)


async def test_one_peer_stalled_mid_frame_does_not_hold_every_decoder_slot() -> None:
    # Without shared_key there is no handshake: a peer's stalled frames may hold only its share.
    async with asyncio.timeout(15):
        async with serving(max_buffered_bytes=4 * 1024 * 1024, frame_timeout_secs=30) as (source, _sink):
            stalled = [await Peer.connect(source) for _ in range(4)]
            for peer in stalled:
                await peer.send(b"\x93")  # the first byte of a frame, then nothing
            await asyncio.sleep(0.05)
            other = await Peer.connect(source, "127.0.0.2")
            started = time.monotonic()
            await other.send(["t", 1, {"n": "other"}, {"chunk": "o"}])
            assert await other.recv(timeout=2) == {"ack": "o"}
            assert time.monotonic() - started < 1.0
            for peer in [other, *stalled]:
                await peer.close()


async def test_per_peer_cap_refuses_fast_and_spares_other_peers() -> None:
    async with asyncio.timeout(15):
        async with serving(max_connections_per_peer=3) as (source, _sink):
            mine = [await Peer.connect(source) for _ in range(3)]
            for i, peer in enumerate(mine):
                await peer.send(["t", 1, {"n": i}, {"chunk": f"m{i}"}])
                assert await peer.recv() == {"ack": f"m{i}"}
            extra = await Peer.connect(source)
            started = time.monotonic()
            assert await extra.closed_within(1)
            assert time.monotonic() - started < 0.5
            await until(lambda: refused(source, "peer_limit") == 1)
            other = await Peer.connect(source, "127.0.0.2")
            await other.send(["t", 1, {"n": "other"}, {"chunk": "o"}])
            assert await other.recv() == {"ack": "o"}
            for i, peer in enumerate(mine):  # the capped peer's own connections still work
                await peer.send(["t", 1, {"n": i}, {"chunk": f"again{i}"}])
                assert await peer.recv() == {"ack": f"again{i}"}
            await mine[0].close()
            await asyncio.sleep(0.05)
            again = await Peer.connect(source)
            await again.send(["t", 1, {"n": "again"}, {"chunk": "g"}])
            assert await again.recv() == {"ack": "g"}
            for peer in [*mine[1:], other, again]:
                await peer.close()


async def test_global_cap_is_counted_as_connection_limit() -> None:
    async with asyncio.timeout(15):
        async with serving(max_connections=2, max_connections_per_peer=2) as (source, _sink):
            a = await Peer.connect(source)
            b = await Peer.connect(source, "127.0.0.2")
            await a.send(["t", 1, {}, {"chunk": "a"}])
            await b.send(["t", 1, {}, {"chunk": "b"}])
            assert await a.recv() == {"ack": "a"} and await b.recv() == {"ack": "b"}
            c = await Peer.connect(source, "127.0.0.3")
            assert await c.closed_within(1)
            await until(lambda: refused(source, "connection_limit") == 1)
            await a.close()
            await b.close()


_SUMMARY = re.compile(r"peer_limit x(\d+)")


async def test_refusals_are_logged_at_a_limited_rate(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shipper.sources.forward")

    async with asyncio.timeout(60):
        async with serving(max_connections_per_peer=1) as (source, _sink):
            holder = await Peer.connect(source)
            await holder.send(["t", 1, {}, {"chunk": "h"}])
            assert await holder.recv() == {"ack": "h"}
            for _ in range(1000):
                peer = await Peer.connect(source)
                assert await peer.closed_within(2)
            await until(lambda: refused(source, "peer_limit") == 1000)
            await holder.close()
    lines = [r.getMessage() for r in caplog.records if "peer_limit" in r.getMessage()]
    assert 1 <= len(lines) <= 5, lines
    # Nothing is lost from the log either: the lines carry the counts, and stop() reports the rest.
    assert sum(int(m.group(1)) for line in lines if (m := _SUMMARY.search(line))) == 1000, lines
