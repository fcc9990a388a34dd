"""A raw forward peer for the connection tests: msgpack over a socket from a chosen loopback address."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgpack

from shipper.event import Event
from shipper.metrics import REGISTRY
from shipper.sources.forward import ForwardSource, ForwardSourceConfig

_names = itertools.count()


class Sink:
    """A ``deliver`` that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, events: list[Event]) -> None:
        self.events.extend(events)


@contextlib.asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[tuple[ForwardSource, Sink]]:
    sink = Sink()
    config = ForwardSourceConfig(type="forward", address="127.0.0.1:0", **options)
    source = ForwardSource(f"fwd-limits-{next(_names)}", config, sink)
    await source.start()
    try:
        yield source, sink
    finally:
        await source.stop()


class Peer:
    """One connection: send msgpack or bytes, read msgpack replies, notice the server's close."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.unpacker = msgpack.Unpacker(raw=False)

    @classmethod
    async def connect(cls, source: ForwardSource, host: str = "127.0.0.1") -> Peer:
        return cls(*await asyncio.open_connection("127.0.0.1", source.port, local_addr=(host, 0)))

    async def send(self, obj: Any) -> None:
        self.writer.write(obj if isinstance(obj, bytes) else msgpack.packb(obj))
        await self.writer.drain()

    async def recv(self, timeout: float = 5.0) -> Any:
        """The next reply; EOFError when the server closed the connection."""
        async with asyncio.timeout(timeout):
            while True:
                for obj in self.unpacker:
                    return obj
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError
                self.unpacker.feed(data)

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

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def refused(source: ForwardSource, reason: str) -> float:
    return REGISTRY.get_sample_value(
        "ecvi_shipper_connections_refused_total", {"source": source.name, "reason": reason}
    ) or 0.0


def input_errors(source: ForwardSource, reason: str) -> float:
    return REGISTRY.get_sample_value(
        "ecvi_shipper_input_errors_total", {"source": source.name, "reason": reason}
    ) or 0.0


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)
