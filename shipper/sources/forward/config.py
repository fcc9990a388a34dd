"""Options of the ``forward`` source (the Fluentd forward protocol over TCP)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_ADDRESS = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+)):(?P<port>\d{1,5})$")


def parse_address(value: str) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 in brackets: ``[::1]:24224``) into a host and a port number."""
    m = _ADDRESS.match(value)
    if not m or int(m.group("port")) > 65535:
        raise ValueError(f"expected host:port such as 127.0.0.1:24224 or [::1]:24224, got {value!r}")
    return m.group("v6") or m.group("host"), int(m.group("port"))


class ForwardSourceConfig(BaseModel):
    """Accept events from Fluentd, Fluent Bit and fluent-logger clients (forward protocol v1)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["forward"]
    address: str = Field(
        default="127.0.0.1:24224",
        description="host:port to listen on (IPv6 in brackets, e.g. [::1]:24224; port 0 picks a free one).",
    )
    shared_key: str | None = Field(
        default=None,
        min_length=1,
        description="Require the HELO/PING/PONG handshake with this shared key; unset: no handshake.",
    )
    self_hostname: str = Field(
        default="ecvi-logs", min_length=1, description="The server hostname sent in the PONG reply."
    )
    max_frame_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest frame (and decompressed payload) accepted; a larger one closes the connection.",
    )
    max_frame_values: int = Field(
        default=1_000_000,
        ge=1000,
        description="Most values (array items, map keys and values) one frame, or one PackedForward "
        "payload, may unpack into; a frame with more closes its connection. A value may take one byte "
        "on the wire and hundreds once decoded: this bounds a frame's memory whatever its size.",
    )
    max_connections: int = Field(default=1024, ge=1, description="Open connections beyond this are refused.")
    max_connections_per_peer: int = Field(
        default=64, ge=1, description="Open connections from one remote IP address beyond this are refused."
    )
    handshake_timeout_secs: float = Field(
        default=5.0,
        gt=0,
        description="With shared_key: close a connection whose PING has not passed this long after connecting.",
    )
    max_buffered_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024 * 1024,
        description="Memory held for unfinished frames across all connections (a frame's bytes and "
        "its scanner's buffer, at least 1 MiB per frame in progress). New frames wait for room; a "
        "frame that outgrows it closes its connection (the client resends). Each open connection "
        "adds up to about 450 KiB of socket buffers, and the frame being unpacked its values.",
    )
    keepalive: bool = Field(
        default=True, description="Tell clients in the HELO that they may keep connections open."
    )
    frame_timeout_secs: float = Field(
        default=30.0, gt=0, description="Close a connection that stops sending in the middle of a frame."
    )
    idle_timeout_secs: float | None = Field(
        default=300.0,
        gt=0,
        description="Close a connection that completes no frame for this long (null: never). Clients "
        "that keep connections open should close idle ones sooner, or use acks to resend.",
    )
    shutdown_timeout_secs: float = Field(
        default=30.0,
        gt=0,
        description="On stop, wait this long for deliveries in flight before cancelling them (unacked).",
    )

    @field_validator("address")
    @classmethod
    def _host_port(cls, v: str) -> str:
        parse_address(v)
        return v
