"""A raw forward peer for the connection tests: msgpack over a socket from a chosen loopback address."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from shipper.metrics import REGISTRY
from shipper.sources.forward import ForwardSource
from tests.shipper.sources.test_forward_server import Client, serving, until
from tests.shipper.sources.test_forward_server import errors as input_errors

__all__ = ["Peer", "input_errors", "refused", "serving", "until"]


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
    return REGISTRY.get_sample_value(
        "ecvi_shipper_connections_refused_total", {"source": source.name, "reason": reason}
    ) or 0.0
