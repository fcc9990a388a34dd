"""The forward protocol's shared-key handshake (HELO, PING, PONG), without sockets.

The server opens with ``["HELO", {"nonce", "auth", "keepalive"}]``; the client answers
``["PING", hostname, salt, sha512_hex(salt + hostname + nonce + shared_key), username, password]``;
the server replies ``["PONG", ok, reason, self_hostname, sha512_hex(salt + self_hostname + nonce +
shared_key)]`` so the client can check the server knows the key too. User/password authentication
is not offered (``auth`` is empty), so the last two PING fields are ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

import msgpack


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
    return msgpack.packb(["HELO", {"nonce": nonce, "auth": "", "keepalive": keepalive}])


def answer_ping(frame: Any, nonce: bytes, shared_key: str, self_hostname: str) -> Pong:
    """Check a client's PING against ``shared_key`` and build the PONG to send back."""
    if type(frame) is not list or len(frame) != 6 or frame[0] != "PING":
        return _refuse("invalid ping message")
    hostname, salt, digest = (_as_bytes(x) for x in frame[1:4])
    if hostname is None or salt is None or digest is None:
        return _refuse("invalid ping message")
    key = shared_key.encode()
    expected = hashlib.sha512(salt + hostname + nonce + key).hexdigest().encode()
    if not hmac.compare_digest(expected, digest):
        return _refuse("shared_key mismatch")
    server_digest = hashlib.sha512(salt + self_hostname.encode() + nonce + key).hexdigest()
    return Pong(True, "", msgpack.packb(["PONG", True, "", self_hostname, server_digest]))


def _refuse(reason: str) -> Pong:
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
