"""The forward protocol's shared-key handshake (HELO, PING, PONG), without sockets.

The server opens with ``["HELO", {"nonce", "auth", "keepalive"}]``; the client answers
``["PING", hostname, salt, sha512_hex(salt + hostname + nonce + shared_key), username, password]``;
the server replies ``["PONG", ok, reason, self_hostname, sha512_hex(salt + self_hostname + nonce +
shared_key)]`` so the client can check the server knows the key too. User/password authentication
is not offered (``auth`` is empty), so the last two PING fields are ignored.

Until its PING passed, a connection is read through :class:`PingReader`, a fixed
``PING_MAX_BYTES`` buffer: an unauthenticated peer never gets a frame decoder's memory.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

import msgpack

PING_MAX_BYTES = 4096
"""Largest PING accepted: a hostname, a salt, a 128-digit digest and two short fields fit easily."""


class PingReader:
    """Collects a client's first frame, its PING, in at most ``PING_MAX_BYTES``."""

    def __init__(self) -> None:
        self._received = bytearray()
        self._unpacker = msgpack.Unpacker(
            raw=False,
            unicode_errors="surrogateescape",
            strict_map_key=False,
            read_size=PING_MAX_BYTES,
            max_buffer_size=PING_MAX_BYTES,
        )

    @property
    def room(self) -> int:
        """How many more bytes the PING may take: read at most this many."""
        return PING_MAX_BYTES - len(self._received)

    def feed(self, data: bytes) -> tuple[Any, bytes] | None:
        """The PING frame and the bytes that followed it, or None while it is incomplete.

        Raises ``ValueError`` for bytes that are not msgpack or a PING larger than ``PING_MAX_BYTES``.
        """
        if len(data) > self.room:
            raise ValueError(f"ping larger than {PING_MAX_BYTES} bytes")
        self._received += data
        self._unpacker.feed(data)
        try:
            frame = next(self._unpacker)
        except StopIteration:
            if not self.room:
                raise ValueError(f"ping larger than {PING_MAX_BYTES} bytes") from None
            return None
        except Exception as exc:  # the C unpacker raises several unrelated types on garbage
            raise ValueError(f"invalid ping message: {type(exc).__name__}") from None
        return frame, bytes(self._received[self._unpacker.tell() :])


@dataclass(frozen=True, slots=True)
class Pong:
    """The server's answer to a PING: whether it passed, why not, and the bytes to send."""

    ok: bool
    reason: str
    reply: bytes


def new_nonce() -> bytes:
    """A fresh random nonce for one connection's HELO."""
    return os.urandom(16)


def encode_helo(nonce: bytes, keepalive: bool) -> bytes:
    """The HELO the server sends as soon as a client connects."""
    helo: bytes = msgpack.packb(["HELO", {"nonce": nonce, "auth": "", "keepalive": keepalive}])
    return helo


def answer_ping(frame: Any, nonce: bytes, shared_key: str, self_hostname: str) -> Pong:
    """Check a client's PING against ``shared_key`` and build the PONG to send back."""
    if type(frame) is not list or len(frame) != 6 or frame[0] != "PING":
        return refuse_ping("invalid ping message")
    hostname, salt, digest = (_as_bytes(x) for x in frame[1:4])
    if hostname is None or salt is None or digest is None:
        return refuse_ping("invalid ping message")
    key = shared_key.encode()
    expected = hashlib.sha512(salt + hostname + nonce + key).hexdigest().encode()
    if not hmac.compare_digest(expected, digest):
        return refuse_ping("shared_key mismatch")
    server_digest = hashlib.sha512(salt + self_hostname.encode() + nonce + key).hexdigest()
    return Pong(True, "", msgpack.packb(["PONG", True, "", self_hostname, server_digest]))


def refuse_ping(reason: str) -> Pong:
    """A failed PONG with ``reason``, sent before closing the connection."""
    return Pong(False, reason, msgpack.packb(["PONG", False, reason, "", ""]))


def _as_bytes(value: Any) -> bytes | None:
    if type(value) is bytes:
        return value
    if type(value) is str:
        try:
            return value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return None
    return None
