"""Forward input through the whole pipeline: an ack means the events are in the sink's buffer."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import msgpack
import pytest
from fluent import sender

from shipper.config import parse_config
from shipper.topology import Topology

pytestmark = pytest.mark.anyio


def _config(tmp: Path) -> str:
    return f"""
data_dir: {tmp}/data
api: {{enabled: false}}
sources:
  fwd: {{type: forward, address: "127.0.0.1:0"}}
sinks:
  out: {{type: file, inputs: [fwd], path: "{tmp}/out.ndjson", batch: {{timeout_secs: 0.05}}}}
"""


async def test_fluent_logger_and_acked_chunks_reach_the_file_sink(tmp_path: Path) -> None:
    topo = Topology(parse_config(_config(tmp_path)))
    await topo.start()
    port = topo.sources["fwd"].port

    def send_with_fluent_logger() -> None:
        s = sender.FluentSender("ecvi", host="127.0.0.1", port=port, nanosecond_precision=True)
        for i in range(500):
            assert s.emit("backend", {"level": "INFO", "message": "hello", "n": i}), s.last_error
        s.close()

    def send_chunk_and_wait_ack() -> tuple[dict[str, str], int]:
        entries = [[1_700_000_000 + i, {"message": "chunked", "n": 1000 + i}] for i in range(100)]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(msgpack.packb(["ecvi.raw", entries, {"chunk": "c-1", "size": 100}]))
            unpacker = msgpack.Unpacker(raw=False)
            while True:
                data = sock.recv(4096)
                assert data, "connection closed without an ack"
                unpacker.feed(data)
                for obj in unpacker:
                    buffered = topo.buffers["out"].pending_events
                    delivered = sum(1 for _ in (tmp_path / "out.ndjson").open()) if (
                        tmp_path / "out.ndjson").exists() else 0
                    return obj, buffered + delivered

    await asyncio.to_thread(send_with_fluent_logger)
    ack, durable = await asyncio.to_thread(send_chunk_and_wait_ack)
    assert ack == {"ack": "c-1"}
    assert durable >= 100  # the chunk was in the buffer (or already written) when acked
    for _ in range(100):
        if (tmp_path / "out.ndjson").exists() and len((tmp_path / "out.ndjson").read_text().splitlines()) >= 600:
            break
        await asyncio.sleep(0.05)
    await topo.stop()
    import orjson

    records = [orjson.loads(x) for x in (tmp_path / "out.ndjson").read_bytes().splitlines()]
    assert sorted(r["n"] for r in records) == list(range(500)) + list(range(1000, 1100))


async def test_connection_limits_from_the_config_file(tmp_path: Path) -> None:
    import hashlib

    config = f"""
data_dir: {tmp_path}/data
api: {{enabled: false}}
sources:
  fwd:
    type: forward
    address: "127.0.0.1:0"
    shared_key: k3y
    handshake_timeout_secs: 0.3
    idle_timeout_secs: 60
    max_connections_per_peer: 2
sinks:
  out: {{type: file, inputs: [fwd], path: "{tmp_path}/out.ndjson", batch: {{timeout_secs: 0.05}}}}
"""

    topo = Topology(parse_config(config))
    await topo.start()
    port = topo.sources["fwd"].port

    def clients() -> tuple[bytes, object]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as silent, \
                socket.create_connection(("127.0.0.1", port), timeout=5) as client, \
                socket.create_connection(("127.0.0.1", port), timeout=5) as third:
            assert third.recv(4096) == b""  # over max_connections_per_peer: closed at once
            unpacker = msgpack.Unpacker(raw=False)
            unpacker.feed(client.recv(4096))
            nonce = next(unpacker)[1]["nonce"]
            digest = hashlib.sha512(b"salt" + b"me" + nonce + b"k3y").hexdigest()
            client.sendall(msgpack.packb(["PING", "me", b"salt", digest, "", ""]))
            client.sendall(msgpack.packb(["t", 1, {"n": 1}, {"chunk": "c"}]))
            replies = []
            while len(replies) < 2:
                unpacker.feed(client.recv(4096))
                replies += list(unpacker)
            silent.recv(4096)  # HELO
            return silent.recv(4096), replies[1]

    closed, ack = await asyncio.to_thread(clients)
    assert closed == b""  # no PING within handshake_timeout_secs
    assert ack == {"ack": "c"}
    await topo.stop()
