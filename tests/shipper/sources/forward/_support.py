"""Helpers of the forward source tests: a source serving on loopback, raw msgpack clients, its metrics."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgpack

from shipper.event import Event
from shipper.metrics import REGISTRY
from shipper.sources.forward import ForwardSource, ForwardSourceConfig

_names = itertools.count()


class Collector:
    """A fake ``deliver`` that records batches; it can be held on a gate or made to fail."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.gate: asyncio.Event | None = None
        self.entered = 0
        self.error: Exception | None = None

    async def __call__(self, events: list[Event]) -> None:
        self.entered += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        self.batches.append(events)

    @property
    def events(self) -> list[Event]:
        return [e for batch in self.batches for e in batch]


@contextlib.asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[tuple[ForwardSource, Collector]]:
    """A forward source on a free loopback port with its options, delivering to a :class:`Collector`."""
    sink = Collector()
    name = f"fwd-test-{next(_names)}"
    source = ForwardSource(name, ForwardSourceConfig(type="forward", address="127.0.0.1:0", **options), sink)
    await source.start()
    try:
        yield source, sink
    finally:
        await source.stop()


class Client:
    """A raw forward client: send msgpack or bytes, read msgpack replies, notice EOF."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.unpacker = msgpack.Unpacker(raw=False)

    @classmethod
    async def connect(cls, source: ForwardSource) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", source.port))

    async def send(self, obj: Any, **packb: Any) -> None:
        self.writer.write(obj if isinstance(obj, bytes) else msgpack.packb(obj, **packb))
        await self.writer.drain()

    async def recv(self, timeout: float = 5.0) -> Any:
        """The next reply; raises EOFError when the server closed the connection."""
        async with asyncio.timeout(timeout):
            while True:
                for obj in self.unpacker:
                    return obj
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError
                self.unpacker.feed(data)

    async def nothing_within(self, seconds: float) -> bool:
        try:
            await self.recv(seconds)
        except TimeoutError:
            return True
        return False

    async def closed_by_server(self, timeout: float = 5.0) -> bool:
        try:
            while True:
                await self.recv(timeout)
        except (EOFError, ConnectionResetError):
            await self.close()
            return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``cond()`` holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def input_errors(source: ForwardSource, reason: str) -> float:
    return REGISTRY.get_sample_value(
        "ecvi_shipper_input_errors_total", {"source": source.name, "reason": reason}
    ) or 0.0


def metric(name: str, source: ForwardSource) -> float:
    """The source's sample of metric ``name``."""
    return REGISTRY.get_sample_value(name, {"source": source.name}) or 0.0


async def still_serves(source: ForwardSource, sink: Collector) -> None:
    """A fresh connection is served normally (acked) after whatever happened before."""
    client = await Client.connect(source)
    await client.send(["after", 1, {"ok": True}, {"chunk": "after-1"}])
    assert await client.recv() == {"ack": "after-1"}
    assert sink.events[-1].record == {"ok": True}
    await client.close()


class Peer(Client):
    """A raw forward client connecting from a chosen loopback address."""

    @classmethod
    async def connect(cls, source: ForwardSource, host: str = "127.0.0.1") -> Peer:
        return cls(*await asyncio.open_connection("127.0.0.1", source.port, local_addr=(host, 0)))

    async def closed_within(self, seconds: float) -> bool:
        """True when the server closes the connection within ``seconds`` (replies are skipped)."""
        try:
            while True:
                await self.recv(seconds)
        except (EOFError, ConnectionResetError):
            return True
        except TimeoutError:
            return False

    async def handshake(self, key: str, hostname: str = "client") -> Any:
        """Read the HELO, answer with a PING for ``key`` and return the PONG."""
        helo = await self.recv()
        salt = b"0123456789abcdef"
        digest = hashlib.sha512(salt + hostname.encode() + helo[1]["nonce"] + key.encode()).hexdigest()
        await self.send(["PING", hostname, salt, digest, "", ""])
        return await self.recv()


def refused(source: ForwardSource, reason: str) -> float:
    """Connections the source refused for ``reason``."""
    return REGISTRY.get_sample_value(
        "ecvi_shipper_connections_refused_total", {"source": source.name, "reason": reason}
    ) or 0.0
